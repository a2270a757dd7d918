//! CSV that is safe to open in a spreadsheet: a text cell that begins with `=`, `+`, `-`, `@`
//! (or a tab or carriage return) would run as a formula, so it gets a leading `'` (OWASP's
//! advice). Numbers are left alone: `-0.25` is a number, not a formula.

use std::borrow::Cow;

/// One cell, defused.
pub fn cell(value: &str) -> Cow<'_, str> {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && value.parse::<f64>().is_err() {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A whole CSV document (RFC 4180 quoting by the `csv` crate, every cell defused).
pub fn document<I, R>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = String>,
{
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |record: Vec<String>| {
        out.write_record(record.iter().map(|v| cell(v).into_owned()))
            .expect("writing to memory cannot fail")
    };
    write(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        write(row.into_iter().collect());
    }
    String::from_utf8(out.into_inner().expect("flushing to memory cannot fail"))
        .expect("cells are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_numbers_kept() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(cell("+1 (555)"), "'+1 (555)");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("-0.25"), "-0.25");
        assert_eq!(cell("Paid Search"), "Paid Search");
        let doc = document(&["a", "b"], [vec!["x,y".to_string(), "=1+1".to_string()]]);
        assert_eq!(doc, "a,b\n\"x,y\",'=1+1\n");
    }
}
