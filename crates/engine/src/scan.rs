//! [`ScanFields`]: the named numeric fields of one row of a scan — the live layer's feature map
//! publishes scans, and a paper run hands each row to its instrument's strategy together with
//! the row's price as a flat bar ([`crate::Engine::on_scan`]).
//!
//! Fields are signals, not money: they are `f64` (a missing or non-numeric cell is `None`).
//! Prices and quantities stay fixed-point in the bar.

use std::sync::Arc;

/// The numeric fields of one scan row, by name. The names are shared by every row of a scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanFields {
    names: Arc<[String]>,
    values: Vec<Option<f64>>,
}

impl ScanFields {
    /// Fields `names[i] = values[i]`. Extra values or names beyond the shorter list are
    /// ignored.
    pub fn new(names: Arc<[String]>, mut values: Vec<Option<f64>>) -> Self {
        values.truncate(names.len());
        Self { names, values }
    }

    /// The value of field `name`, if the row has it and it is a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get(i).copied().flatten()
    }

    /// `(name, value)` of every field, in the scan's column order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<f64>)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied().chain(std::iter::repeat(None)))
    }

    /// How many fields the row has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_name_and_missing_cells_are_none() {
        let names: Arc<[String]> = vec!["score".to_string(), "rsi".to_string()].into();
        let row = ScanFields::new(names, vec![Some(1.5)]);
        assert_eq!(row.get("score"), Some(1.5));
        assert_eq!(row.get("rsi"), None);
        assert_eq!(row.get("volume"), None);
        assert_eq!(
            row.iter().collect::<Vec<_>>(),
            vec![("score", Some(1.5)), ("rsi", None)]
        );
    }
}
