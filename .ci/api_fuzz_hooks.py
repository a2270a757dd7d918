"""Values for the string formats the document names but a regular expression cannot decide
(src/http/formats.rs): schemathesis draws schema-valid inputs from these, so that a "valid"
request it sends is one the service must accept."""

import schemathesis
from hypothesis import strategies as st

# Numbers libphonenumber holds valid, E.164 and spelled out (the service takes both).
NUMBERS = [
    f"+1415555{n:04d}" for n in range(100, 200)
] + ["+442079460958", "+4930123456", "+33142685300", "+1 (415) 555-0123", "0044 20 7946 0000"]

schemathesis.openapi.format("e164", st.sampled_from(NUMBERS))
schemathesis.openapi.format(
    "iana-time-zone",
    st.sampled_from(["UTC", "America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Sydney"]),
)
schemathesis.openapi.format("iso-4217", st.sampled_from(["USD", "EUR", "gbp", "JPY", "CHF"]))
schemathesis.openapi.format(
    "domain",
    st.sampled_from(["example.com", "www.acme.example", "shop.example.co.uk", "localhost", "127.0.0.1"]),
)
schemathesis.openapi.format(
    "uri",
    st.sampled_from(
        ["https://crm.example/hooks", "http://127.0.0.1:9/hook", "https://acme.example/a/b?c=d#e"]
    ),
)
