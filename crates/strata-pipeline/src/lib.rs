//! Declarative pipelines: flows that refine bronze into silver and silver into gold, with
//! strict casts, expectations, quarantine and incremental reads (DECISIONS.md sections 5-7, 9,
//! 10).
//!
//! ```text
//!  pipeline file ──> spec (parse, lines) ──> validate (graph, layers, plan over empty inputs)
//!    ──> run, per flow in order: pin sources ──> read changes since the watermark (one scan)
//!        ──> steps (casts fail rows, never NULL) ──> SQL ──> expectations ──> quarantine
//!        commit ──> target commit (txn per source = version consumed) ──> run records
//! ```

pub mod cast;
pub mod error;
pub mod quality;
pub mod quarantine;
pub mod record;
pub mod reduce;
pub mod replay;
pub mod rules;
pub mod run;
pub mod spec;
pub mod steps;
pub mod transform;
pub mod validate;

pub use error::{Error, Result};
pub use run::{FlowOutcome, PartitionRange, RunOptions, RunSummary, run};
pub use spec::PipelineFile;
pub use validate::{Pipeline, Report, check, resolve};
