//! The mapping library sync workers link: a `syncline.mapping.v1.MappingPlan` compiled once
//! per version into a [`CompiledPlan`], then applied in-process to every record of a batch.
//!
//! Guarantees:
//! - only a plan's target fields are ever written: a source field no rule reads never
//!   reaches the output, whatever its name;
//! - a field that fails (a value that cannot be converted, a rejected picklist value) is left
//!   out of the output and reported as a [`FieldError`] naming it; the other fields map;
//! - transforms are parsed when the plan is compiled, never per record;
//! - a plan schema drift broke is refused by [`CompiledPlan::compile`]; a sync worker
//!   compiles it with [`CompiledPlan::compile_without_broken`], which leaves the broken rules
//!   out and names them;
//! - with the guarded outbound apply (`apply_outbound_guarded`, given the CRM record as it
//!   is, or `None` on create), a field guarded `if_empty` is never written over a non-empty
//!   value and one guarded `on_create` never on an update.

pub mod plan;
pub mod transform;

pub use plan::{
    BrokenRule, CompileError, CompiledObject, CompiledPlan, Direction, FieldError, Guard,
    MappedRecord, Rules, UnknownObject,
};
pub use transform::{Step, TransformError};
