//! A run's table (orders, fills, trades, equity) as it leaves Rust: an Arrow record batch that
//! pyarrow (or any reader of the Arrow PyCapsule interface) imports without copying it.
//!
//! `pyarrow.table(t)` and `pyarrow.RecordBatchReader.from_stream(t)` call
//! `t.__arrow_c_stream__()`, which exports the batch through the Arrow C stream interface:
//! pyarrow's arrays then point at the buffers built during the run, kept alive until pyarrow
//! releases them.

use std::ffi::CString;

use arrow::array::{RecordBatch, RecordBatchIterator};
use arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// One of a run's tables, handed to pyarrow through `__arrow_c_stream__`.
#[pyclass(name = "ArrowTable", module = "tradeloom._tradeloom", frozen)]
pub struct ArrowTable {
    batch: RecordBatch,
}

impl ArrowTable {
    pub fn new(batch: RecordBatch) -> Self {
        Self { batch }
    }
}

#[pymethods]
impl ArrowTable {
    /// Rows in the table.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The table as an `arrow_array_stream` PyCapsule (the Arrow PyCapsule interface). A
    /// `requested_schema` is not honoured: the producer may ignore it, and the columns keep
    /// their types (exact decimals stay exact).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches = RecordBatchIterator::new([Ok(self.batch.clone())], self.batch.schema());
        let stream = FFI_ArrowArrayStream::new(Box::new(batches));
        // The consumer moves the stream out of the capsule (leaving it released); one never
        // consumed is released when the capsule is dropped (`FFI_ArrowArrayStream`'s `Drop`).
        let name = CString::from(c"arrow_array_stream");
        PyCapsule::new(py, stream, Some(name))
    }

    fn __repr__(&self) -> String {
        let columns: Vec<String> = self
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        format!(
            "ArrowTable({} rows; {})",
            self.batch.num_rows(),
            columns.join(", ")
        )
    }
}
