//! Bounded-memory Parquet output for the generator: rows are buffered per file and flushed in
//! row groups; a new file starts every `rows_per_file` rows, so each day has several files at
//! the larger scales.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{PipelineError, Result};

/// Writes record batches into `dir/part-NNNNN.parquet` files of at most `rows_per_file` rows.
pub struct ParquetSink {
    dir: PathBuf,
    schema: SchemaRef,
    rows_per_file: usize,
    writer: Option<ArrowWriter<File>>,
    rows_in_file: usize,
    files: usize,
    /// Rows written in total.
    pub rows: u64,
}

impl ParquetSink {
    /// A sink into `dir` (created if needed).
    pub fn new(dir: &Path, schema: SchemaRef, rows_per_file: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            schema,
            rows_per_file,
            writer: None,
            rows_in_file: 0,
            files: 0,
            rows: 0,
        })
    }

    /// Appends a batch (must match the sink's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            let path = self.dir.join(format!("part-{:05}.parquet", self.files));
            let file = File::create(&path).map_err(|e| PipelineError::io(&path, e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(128 * 1024))
                .build();
            self.writer = Some(ArrowWriter::try_new(
                file,
                Arc::clone(&self.schema),
                Some(props),
            )?);
            self.files += 1;
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.write(batch)?;
        }
        self.rows_in_file += batch.num_rows();
        self.rows += batch.num_rows() as u64;
        if self.rows_in_file >= self.rows_per_file {
            self.finish_file()?;
        }
        Ok(())
    }

    fn finish_file(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.close()?;
        }
        self.rows_in_file = 0;
        Ok(())
    }

    /// Closes the current file.
    pub fn close(mut self) -> Result<u64> {
        self.finish_file()?;
        Ok(self.rows)
    }
}
