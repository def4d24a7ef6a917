//! Table-driven tests of every control, the cross-object rules and the profile merge, from
//! inline YAML fixtures decoded as strictly as `annexa check` decodes them (see `fixtures`).

pub(crate) mod agent_policy;
pub(crate) mod fixtures;
mod gpu_paths;
mod model_approval;
pub(crate) mod model_deployment;
mod pod_access;
mod profile;
mod training_dataset;
mod workload;
