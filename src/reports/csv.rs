//! CSV out of the service: RFC 4180 quoting (the `csv` crate) and a defence against formula
//! injection. A cell from outside (a campaign name, a conversion name, a click id) that begins
//! with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a formula by a
//! spreadsheet that opens the file, so it is prefixed with `'`, which spreadsheets show as text.
//! Numbers the service formats itself are written as they are: a negative figure stays a number.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as it is safe to write: prefixed with `'` when it would start a formula.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One cell of a row: text from anywhere (defused), or a number the service formatted.
pub struct Cell<'a>(Cow<'a, str>);

impl<'a> Cell<'a> {
    pub fn text(text: &'a str) -> Self {
        Self(csv_cell(text))
    }

    pub fn empty() -> Self {
        Self(Cow::Borrowed(""))
    }

    /// A number the service formatted itself (a report figure): written as it is.
    pub fn number(formatted: String) -> Self {
        Self(Cow::Owned(formatted))
    }

    pub fn integer(n: i64) -> Self {
        Self(Cow::Owned(n.to_string()))
    }

    /// An amount in micro-units as a plain decimal, exact (`120500000` → `120.5`).
    pub fn micros(micros: i64) -> Self {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let (units, fraction) = (abs / 1_000_000, abs % 1_000_000);
        let text = if fraction == 0 {
            format!("{sign}{units}")
        } else {
            let digits = format!("{fraction:06}");
            format!("{sign}{units}.{}", digits.trim_end_matches('0'))
        };
        Self(Cow::Owned(text))
    }
}

impl AsRef<[u8]> for Cell<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(text: &'a str) -> Self {
        Cell::text(text)
    }
}

/// Builds a CSV document in memory, a row at a time. Rows may differ in length (a file may
/// start with a line of parameters, as Google Ads' import format does).
pub struct CsvWriter {
    inner: csv::Writer<Vec<u8>>,
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvWriter {
    pub fn new() -> Self {
        Self {
            inner: csv::WriterBuilder::new()
                .flexible(true)
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new()),
        }
    }

    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = Cell<'a>>) {
        self.inner
            .write_record(cells)
            .expect("writing CSV to memory cannot fail");
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.inner
            .into_inner()
            .expect("flushing CSV to memory cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_of(rows: Vec<Vec<Cell<'_>>>) -> String {
        let mut w = CsvWriter::new();
        for row in rows {
            w.row(row);
        }
        String::from_utf8(w.into_bytes()).unwrap()
    }

    #[test]
    fn cells_that_would_start_a_formula_are_prefixed() {
        for (input, want) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1 415", "'+1 415"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("winter sale", "winter sale"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(input), want, "{input}");
        }
    }

    #[test]
    fn fields_with_commas_quotes_or_newlines_are_quoted() {
        let text = csv_of(vec![
            vec!["Parameters:TimeZone=Europe/London".into()],
            vec![
                "a,b".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
                "plain".into(),
                "=1+1".into(),
                "=a,b".into(),
            ],
        ]);
        assert_eq!(
            text,
            "Parameters:TimeZone=Europe/London\r\n\
             \"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",plain,'=1+1,\"'=a,b\"\r\n"
        );
    }

    #[test]
    fn numbers_are_exact_and_never_defused() {
        let text = csv_of(vec![vec![
            Cell::micros(120_500_000),
            Cell::micros(0),
            Cell::micros(1),
            Cell::micros(-2_250_000),
            Cell::integer(-7),
            Cell::empty(),
        ]]);
        assert_eq!(text, "120.5,0,0.000001,-2.25,-7,\r\n");
    }
}
