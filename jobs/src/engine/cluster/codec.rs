//! Extension codecs: Ballista's own, plus Persona's model functions with their models.
//!
//! Ballista serialises logical plans (client → scheduler) and physical plans (scheduler →
//! executors). Functions travel by name and are looked up in the receiver's registry, which
//! cannot know a model fitted moments ago; so the model functions (`kmeans_step`,
//! `kmeans_assign`, `als_half_step`, `als_top_n`) also write their model into the plan
//! ([`persona_udfs::codec`]), or name the file the driver stored a large matrix in, which the
//! receiving process reads through its [`StoredFactors`]. Everything else is delegated to
//! Ballista's codecs.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use persona_udfs::codec::FactorFiles;

use super::factor_files::StoredFactors;

/// Ballista's logical codec plus Persona's model functions.
#[derive(Debug)]
pub struct PersonaLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    files: Arc<StoredFactors>,
}

impl PersonaLogicalCodec {
    /// Reads stored model factors through `files`.
    pub fn new(files: Arc<StoredFactors>) -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            files,
        }
    }
}

impl LogicalExtensionCodec for PersonaLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf_or(name, buf, &*self.files, || {
            self.inner.try_decode_udf(name, buf)
        })
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        persona_udfs::codec::encode_udf(node, buf);
        Ok(())
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf_or(name, buf, &*self.files, || {
            self.inner.try_decode_udaf(name, buf)
        })
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        persona_udfs::codec::encode_udaf(node, buf);
        Ok(())
    }
}

/// Ballista's physical codec plus Persona's model functions.
#[derive(Debug)]
pub struct PersonaPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    files: Arc<StoredFactors>,
}

impl PersonaPhysicalCodec {
    /// Reads stored model factors through `files`.
    pub fn new(files: Arc<StoredFactors>) -> Self {
        Self {
            inner: BallistaPhysicalExtensionCodec::default(),
            files,
        }
    }
}

/// Both codecs of a process that reads stored model factors through the object stores of
/// `env`, sharing one [`StoredFactors`] (so one copy of each matrix per process).
pub fn codecs(env: Arc<RuntimeEnv>) -> (Arc<PersonaLogicalCodec>, Arc<PersonaPhysicalCodec>) {
    let files = Arc::new(StoredFactors::new(env));
    (
        Arc::new(PersonaLogicalCodec::new(Arc::clone(&files))),
        Arc::new(PersonaPhysicalCodec::new(files)),
    )
}

impl PhysicalExtensionCodec for PersonaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf_or(name, buf, &*self.files, || {
            self.inner.try_decode_udf(name, buf)
        })
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        persona_udfs::codec::encode_udf(node, buf);
        Ok(())
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf_or(name, buf, &*self.files, || {
            self.inner.try_decode_udaf(name, buf)
        })
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        persona_udfs::codec::encode_udaf(node, buf);
        Ok(())
    }
}

/// Persona's model function `name` from its payload, or what `fallback` (Ballista's codec) makes
/// of it.
fn decode_udf_or(
    name: &str,
    buf: &[u8],
    files: &dyn FactorFiles,
    fallback: impl FnOnce() -> Result<Arc<ScalarUDF>>,
) -> Result<Arc<ScalarUDF>> {
    persona_udfs::codec::decode_udf(name, buf, Some(files))?.map_or_else(fallback, Ok)
}

/// Persona's aggregate model function `name` from its payload, or what `fallback` makes of it.
fn decode_udaf_or(
    name: &str,
    buf: &[u8],
    files: &dyn FactorFiles,
    fallback: impl FnOnce() -> Result<Arc<AggregateUDF>>,
) -> Result<Arc<AggregateUDF>> {
    persona_udfs::codec::decode_udaf(name, buf, Some(files))?.map_or_else(fallback, Ok)
}
