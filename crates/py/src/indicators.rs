//! The engine's incremental indicators as Python classes (`tradeloom.SMA`, `EMA`,
//! `RollingStd`, `Crossover`): the same code the built-in strategies run, each `update` O(1).

use std::sync::atomic::{AtomicI32, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString};
use tradeloom_engine::indicator::{Cross, CrossDetector, Ema, RollingStats, Sma};

use crate::values::raw9;

fn check_period(n: i64, class: &str) -> PyResult<usize> {
    if !(1..=10_000_000).contains(&n) {
        return Err(PyValueError::new_err(format!(
            "{class}(period): must be between 1 and 10,000,000, got {n}"
        )));
    }
    Ok(n as usize)
}

/// Simple moving average of the last `period` values, from an exact integer sum.
#[pyclass(module = "tradeloom", name = "SMA")]
pub(crate) struct PySma {
    inner: Sma,
}

#[pymethods]
impl PySma {
    #[new]
    fn new(period: i64) -> PyResult<Self> {
        Ok(Self {
            inner: Sma::new(check_period(period, "SMA")?),
        })
    }

    /// Adds a value (a float, int, Decimal or str price), dropping the oldest once full.
    fn update(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.update(raw9(value, "SMA.update: value")?);
        Ok(())
    }

    /// Whether `period` values have been seen.
    #[getter]
    fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The average, or `None` until ready.
    #[getter]
    fn value(&self) -> Option<f64> {
        self.inner.is_ready().then(|| self.inner.value())
    }

    #[getter]
    fn period(&self) -> usize {
        self.inner.period()
    }

    fn __repr__(&self) -> String {
        format!("SMA({}, value={:?})", self.inner.period(), self.value())
    }
}

/// Exponential moving average, `alpha = 2 / (period + 1)`, seeded with the first value and
/// ready after `period` values (pandas `ewm(span=period, adjust=False)`).
#[pyclass(module = "tradeloom", name = "EMA")]
pub(crate) struct PyEma {
    inner: Ema,
    period: usize,
}

#[pymethods]
impl PyEma {
    #[new]
    fn new(period: i64) -> PyResult<Self> {
        let period = check_period(period, "EMA")?;
        Ok(Self {
            inner: Ema::new(period),
            period,
        })
    }

    /// Adds a value.
    fn update(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.update(raw9(value, "EMA.update: value")?);
        Ok(())
    }

    #[getter]
    fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The average, or `None` until ready.
    #[getter]
    fn value(&self) -> Option<f64> {
        self.inner.is_ready().then(|| self.inner.value())
    }

    #[getter]
    fn period(&self) -> usize {
        self.period
    }

    fn __repr__(&self) -> String {
        format!("EMA({}, value={:?})", self.period, self.value())
    }
}

/// Rolling mean and sample standard deviation (n − 1) of the last `period` values, from exact
/// integer sums.
#[pyclass(module = "tradeloom", name = "RollingStd")]
pub(crate) struct PyRollingStd {
    inner: RollingStats,
    period: usize,
}

#[pymethods]
impl PyRollingStd {
    #[new]
    fn new(period: i64) -> PyResult<Self> {
        let period = check_period(period, "RollingStd")?;
        if period < 2 {
            return Err(PyValueError::new_err(
                "RollingStd(period): must be at least 2 (a sample deviation)",
            ));
        }
        Ok(Self {
            inner: RollingStats::new(period),
            period,
        })
    }

    /// Adds a value.
    fn update(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.update(raw9(value, "RollingStd.update: value")?);
        Ok(())
    }

    #[getter]
    fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The standard deviation, or `None` until ready.
    #[getter]
    fn value(&self) -> Option<f64> {
        self.inner.is_ready().then(|| self.inner.std())
    }

    /// The mean of the window, or `None` until ready.
    #[getter]
    fn mean(&self) -> Option<f64> {
        self.inner.is_ready().then(|| self.inner.mean())
    }

    #[getter]
    fn period(&self) -> usize {
        self.period
    }

    fn __repr__(&self) -> String {
        format!("RollingStd({}, value={:?})", self.period, self.value())
    }
}

/// Crossovers of a fast and a slow series: `update(fast, slow)` returns `"up"` when fast went
/// from below slow to above it since the last update, `"down"` for the mirror, else `None`
/// (touching is not crossing). Two `SMA`s are compared exactly (integer sums); anything else
/// by value (`EMA`, `RollingStd`, floats).
///
/// Frozen, its one value (the last sign) in a relaxed atomic: an update takes no borrow flag
/// of its own (the interpreter's lock already keeps updates apart).
#[pyclass(module = "tradeloom", name = "Crossover", frozen)]
pub(crate) struct PyCrossover {
    /// The detector's last sign, [`NO_SIGN`] before the first update.
    previous: AtomicI32,
}

/// [`PyCrossover::previous`] before the first update.
const NO_SIGN: i32 = i32::MIN;

/// A series' current value for a comparison.
fn level(value: &Bound<'_, PyAny>, which: &str) -> PyResult<f64> {
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(f.value());
    }
    let not_ready = || {
        PyValueError::new_err(format!(
            "Crossover.update: {which} is not ready yet (check `.ready` first)"
        ))
    };
    if let Ok(ema) = value.cast::<PyEma>() {
        return ema.borrow().value().ok_or_else(not_ready);
    }
    if let Ok(std) = value.cast::<PyRollingStd>() {
        return std.borrow().value().ok_or_else(not_ready);
    }
    if let Ok(sma) = value.cast::<PySma>() {
        return sma.borrow().value().ok_or_else(not_ready);
    }
    value.extract::<f64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "Crossover.update: {which} must be an SMA, EMA, RollingStd or a number"
        ))
    })
}

#[pymethods]
impl PyCrossover {
    #[new]
    fn new() -> Self {
        Self {
            previous: AtomicI32::new(NO_SIGN),
        }
    }

    /// Feeds the current fast and slow values; returns `"up"`, `"down"` or `None`.
    fn update<'py>(
        &self,
        fast: &Bound<'py, PyAny>,
        slow: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let py = fast.py();
        let sign = match (fast.cast::<PySma>(), slow.cast::<PySma>()) {
            (Ok(f), Ok(s)) => {
                let (f, s) = (f.borrow(), s.borrow());
                if !f.inner.is_ready() || !s.inner.is_ready() {
                    return Err(PyValueError::new_err(
                        "Crossover.update: both SMAs must be ready (check `.ready` first)",
                    ));
                }
                f.inner.compare(&s.inner)
            }
            _ => {
                let (f, s) = (level(fast, "fast")?, level(slow, "slow")?);
                (f > s) as i32 - (f < s) as i32
            }
        };
        let previous = self.previous.load(Ordering::Relaxed);
        let mut detector = CrossDetector::resume((previous != NO_SIGN).then_some(previous));
        let cross = detector.update(sign);
        self.previous
            .store(detector.previous().unwrap_or(NO_SIGN), Ordering::Relaxed);
        // Interned: no string is made per update.
        Ok(cross.map(|c| match c {
            Cross::Up => intern!(py, "up").clone(),
            Cross::Down => intern!(py, "down").clone(),
        }))
    }
}
