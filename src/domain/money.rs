//! Money is stored as integer micro-units of a currency (1.15 USD = 1_150_000), so sums are exact
//! and reports never drift by a cent; the API speaks decimal numbers.

const MICROS_PER_UNIT: f64 = 1_000_000.0;

/// Converts a decimal amount (already checked finite) to micro-units, rounding to the nearest.
pub fn to_micros(amount: f64) -> i64 {
    (amount * MICROS_PER_UNIT).round() as i64
}

pub fn from_micros(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_UNIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_prices_exactly() {
        for amount in [0.0, 1.15, 0.01, 2.0, 1234.567891] {
            assert_eq!(from_micros(to_micros(amount)), amount);
        }
        assert_eq!(to_micros(1.15), 1_150_000);
        assert_eq!(
            (0..100).map(|_| to_micros(0.1)).sum::<i64>(),
            to_micros(10.0)
        );
    }
}
