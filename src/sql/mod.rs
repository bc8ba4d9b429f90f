//! SQL: parsing (sqlparser via DataFusion, plus Weir's own statements) and the rewrite of
//! DataFusion logical plans into streaming dataflows; window table functions (`TUMBLE`) become
//! plain SQL first. Binding and type checking are
//! DataFusion's (see `Database::plan`).

pub mod checked;
pub mod depth;
pub mod event_time;
pub mod grants;
pub mod numeric_sum;
pub mod parse;
pub mod roles;
pub mod stream_plan;
pub mod view_options;
pub mod windows;
