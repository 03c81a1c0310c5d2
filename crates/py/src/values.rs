//! Numbers from Python as the engine's fixed-point values.
//!
//! `int`, `str` and `decimal.Decimal` are exact: a value with more decimals than the
//! instrument allows is an error. A `float` is already rounded, so it is rounded once more, to
//! the instrument's precision (to the nearest, halves away from zero); it is exact up to 15
//! significant digits.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};
use tradeloom_core::{Decimal, Price, Quantity};

/// 10^-9: the raw unit of prices and quantities.
pub(crate) const SCALE: f64 = 1e9;

/// A value given from Python: a float, or exact decimal text.
enum Number {
    Float(f64),
    Text(String),
}

/// Reads `value`; `what` names it in errors (`buy: quantity`).
fn number(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Number> {
    if value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a number, not a bool"
        )));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let x = f.value();
        if !x.is_finite() {
            return Err(PyValueError::new_err(format!(
                "{what} must be finite, got {x}"
            )));
        }
        return Ok(Number::Float(x));
    }
    if value.is_instance_of::<PyInt>() {
        let v: i128 = value
            .extract()
            .map_err(|_| PyValueError::new_err(format!("{what} is out of range")))?;
        return Ok(Number::Text(v.to_string()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Number::Text(s.to_cow()?.trim().to_string()));
    }
    let type_name = value.get_type().name()?.to_string();
    if type_name == "Decimal" {
        // Fixed-point text, never an exponent.
        let text: String = value.call_method1("__format__", ("f",))?.extract()?;
        return Ok(Number::Text(text));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be an int, float, Decimal or str, got {type_name}"
    )))
}

/// `x` rounded to `precision` decimals, as raw units at 10^-9.
fn float_raw(x: f64, precision: u8, what: &str) -> PyResult<i64> {
    let precision = precision.min(9);
    let units = (x * 10f64.powi(i32::from(precision))).round();
    let step = 10i64.pow(u32::from(9 - precision));
    // Beyond ±2^62 the product could not be a raw value.
    if units.abs() >= 4.6e18 / step as f64 {
        return Err(PyValueError::new_err(format!("{what} {x} is out of range")));
    }
    Ok(units as i64 * step)
}

/// A price at `precision` decimals.
pub(crate) fn price(value: &Bound<'_, PyAny>, precision: u8, what: &str) -> PyResult<Price> {
    match number(value, what)? {
        Number::Float(x) => Ok(Price::from_raw(float_raw(x, precision, what)?, precision)),
        Number::Text(t) => Price::parse(&t, precision)
            .map_err(|e| PyValueError::new_err(format!("{what} `{t}`: {e}"))),
    }
}

/// A positive quantity at `precision` decimals.
pub(crate) fn quantity(value: &Bound<'_, PyAny>, precision: u8, what: &str) -> PyResult<Quantity> {
    let q = match number(value, what)? {
        Number::Float(x) => {
            let raw = float_raw(x, precision, what)?;
            Quantity::from_raw(raw, precision)
                .map_err(|_| PyValueError::new_err(format!("{what} {x} is negative")))?
        }
        Number::Text(t) => Quantity::parse(&t, precision)
            .map_err(|e| PyValueError::new_err(format!("{what} `{t}`: {e}")))?,
    };
    if q.raw() == 0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be positive (at {precision} decimals)"
        )));
    }
    Ok(q)
}

/// A value for an indicator, raw at 10^-9 (floats to the nearest raw unit).
pub(crate) fn raw9(value: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    // The common case first: a bar's price as a float.
    if let Ok(f) = value.cast::<PyFloat>() {
        let x = f.value();
        if x.is_finite() && x.abs() < 1e9 {
            return Ok((x * SCALE).round() as i64);
        }
    }
    match number(value, what)? {
        Number::Float(x) => float_raw(x, 9, what),
        Number::Text(t) => Decimal::parse(&t)
            .map_err(|e| e.to_string())
            .and_then(|d| d.to_raw9().map_err(|e| e.to_string()))
            .map_err(|e| PyValueError::new_err(format!("{what} `{t}`: {e}"))),
    }
}

/// Raw units at 10^-9 as a float.
#[inline]
pub(crate) fn float(raw: i64) -> f64 {
    raw as f64 / SCALE
}
