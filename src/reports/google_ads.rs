//! Google Ads offline conversion import: a CSV of the conversions that calls from ad clicks led
//! to, keyed by the click's `gclid`, which Google Ads credits back to the campaign, ad group and
//! keyword that were clicked.
//!
//! The file begins with `Parameters:TimeZone=<IANA zone>`, so conversion times are written in
//! the property's own zone as `yyyy-MM-dd HH:mm:ss`. Each call yields one `qualified_call` row
//! when the lead rule qualified it (no value: Google Ads uses the conversion action's default),
//! and one row per conversion recorded for it, named as recorded, with its value in the
//! property's currency. Conversion names must match conversion actions set up in Google Ads.

use chrono_tz::Tz;

use super::csv::{Cell, CsvWriter};
use super::days::local_time;
use crate::storage::ClickedCall;

/// The conversion name of a call the property's lead rule qualified.
pub const QUALIFIED_CALL: &str = "qualified_call";

pub const COLUMNS: [&str; 5] = [
    "Google Click ID",
    "Conversion Name",
    "Conversion Time",
    "Conversion Value",
    "Conversion Currency",
];

/// The import file for `calls`, times in `tz`, values in `currency`.
pub fn offline_conversions_csv(calls: &[ClickedCall], tz: Tz, currency: &str) -> Vec<u8> {
    let mut csv = CsvWriter::new();
    let parameters = format!("Parameters:TimeZone={}", tz.name());
    csv.row([Cell::text(&parameters)]);
    csv.row(COLUMNS.map(Cell::text));
    for call in calls {
        if call.qualified {
            let at = local_time(tz, call.started_at);
            csv.row([
                Cell::text(&call.gclid),
                Cell::text(QUALIFIED_CALL),
                Cell::text(&at),
                Cell::empty(),
                Cell::empty(),
            ]);
        }
        for conversion in &call.conversions {
            let at = local_time(tz, conversion.at);
            csv.row([
                Cell::text(&call.gclid),
                Cell::text(&conversion.name),
                Cell::text(&at),
                Cell::micros(conversion.value_micros),
                Cell::text(currency),
            ]);
        }
    }
    csv.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::days::property_tz;
    use crate::storage::ConversionRow;

    fn conversion(name: &str, value_micros: i64, at: i64) -> ConversionRow {
        ConversionRow {
            id: format!("cv-{name}"),
            call_id: "c1".into(),
            name: name.into(),
            value_micros,
            at,
            created_at: at,
        }
    }

    #[test]
    fn qualified_calls_and_conversions_become_rows_in_the_propertys_zone() {
        // 2026-07-01 14:00:00 UTC is 10:00 in New York (EDT).
        let t = 1_782_914_400_000;
        let calls = vec![
            ClickedCall {
                id: "c1".into(),
                gclid: "Cj0KCQ".into(),
                started_at: t,
                qualified: true,
                conversions: vec![
                    conversion("sale", 120_500_000, t + 3_600_000),
                    conversion("=cmd|' /C calc'!A0", 0, t + 7_200_000),
                ],
            },
            ClickedCall {
                id: "c2".into(),
                gclid: "-abc,def".into(),
                started_at: t + 60_000,
                qualified: false,
                conversions: Vec::new(),
            },
        ];
        let text = String::from_utf8(offline_conversions_csv(
            &calls,
            property_tz("America/New_York"),
            "USD",
        ))
        .unwrap();
        assert_eq!(
            text,
            "Parameters:TimeZone=America/New_York\r\n\
             Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\r\n\
             Cj0KCQ,qualified_call,2026-07-01 10:00:00,,\r\n\
             Cj0KCQ,sale,2026-07-01 11:00:00,120.5,USD\r\n\
             Cj0KCQ,'=cmd|' /C calc'!A0,2026-07-01 12:00:00,0,USD\r\n"
        );
    }
}
