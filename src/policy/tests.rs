//! Table-driven tests of every control, the cross-object rules and the profile merge, from
//! inline YAML fixtures decoded the way `annexa check` decodes them (`manifest::decode`).

mod agent_policy;
mod fixtures;
mod gpu_paths;
mod model_approval;
mod model_deployment;
mod pod_access;
mod profile;
mod properties;
mod training_dataset;
mod workload;
