//! The three engines side by side on the same AdmissionReview bytes: Annexa's decision, the
//! Rego policy `policy/gpu-pod.rego` in regorus, and the ValidatingAdmissionPolicy
//! `policy/gpu-pod-vap.yaml` in the cel crate. Each answers allowed/denied.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: set-up failures are fatal

use annexa::webhook::{StaticContext, admission, review};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub const REGO: &str = include_str!("../policy/gpu-pod.rego");
pub const VAP: &str = include_str!("../policy/gpu-pod-vap.yaml");
pub const PARAMS: &str = include_str!("../policy/gpu-pod-params.yaml");

/// The workload fixtures of `benches/fixtures/` (the peers encode the GPU-pod rules only);
/// the suffix is the verdict.
pub const WORKLOAD_FIXTURES: &[&str] = &[
    "pod-1k-allow",
    "pod-1k-deny",
    "gpu-pod-review", // the 9.5 KB GPU pod, admitted
    "gpu-pod-deny",
    "deployment-allow",
    "deployment-deny",
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/fixtures")
}

pub fn fixture(stem: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("{stem}.json"))).unwrap()
}

pub fn expected_allowed(stem: &str) -> bool {
    !stem.ends_with("-deny")
}

/// Annexa with the benchmark context (benches/fixtures/context.yaml).
pub struct Annexa {
    context: StaticContext,
    now: jiff::Timestamp,
}

impl Default for Annexa {
    fn default() -> Self {
        let context = StaticContext::load(&[], &[fixtures_dir().join("context.yaml")]).unwrap();
        Self {
            context,
            now: jiff::Timestamp::now(),
        }
    }
}

impl Annexa {
    /// The whole answer: decode, evaluate, encode (what the webhook does per request).
    pub fn answer(&self, bytes: &[u8]) -> Vec<u8> {
        let request = review::decode(bytes).unwrap();
        let decision = admission::validate(&request, &self.context, self.now).unwrap();
        decision.response.to_json()
    }

    pub fn allowed(&self, bytes: &[u8]) -> bool {
        let request = review::decode(bytes).unwrap();
        admission::validate(&request, &self.context, self.now)
            .unwrap()
            .response
            .allowed
    }
}

/// regorus with `policy/gpu-pod.rego` loaded; input is the whole AdmissionReview.
#[derive(Clone)]
pub struct Rego {
    engine: regorus::Engine,
}

impl Default for Rego {
    fn default() -> Self {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("gpu-pod.rego".to_string(), REGO.to_string())
            .unwrap();
        Self { engine }
    }
}

impl Rego {
    /// Parses the bytes into a regorus value (the conversion step).
    pub fn input(bytes: &[u8]) -> regorus::Value {
        regorus::Value::from_json_str(std::str::from_utf8(bytes).unwrap()).unwrap()
    }

    /// Conversion included: the review's bytes in, the verdict out.
    pub fn allowed_from_bytes(&mut self, bytes: &[u8]) -> Result<bool, String> {
        self.engine
            .set_input_json(std::str::from_utf8(bytes).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        self.eval()
    }

    /// Conversion excluded: an input already in the engine's representation.
    pub fn allowed(&mut self, input: &regorus::Value) -> Result<bool, String> {
        self.engine.set_input(input.clone());
        self.eval()
    }

    /// The violations (`data.annexa.gpu.deny`).
    pub fn violations(&mut self) -> Result<Vec<String>, String> {
        let deny = self
            .engine
            .eval_rule("data.annexa.gpu.deny".to_string())
            .map_err(|e| e.to_string())?;
        Ok(deny
            .as_set()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string())
            .collect())
    }

    fn eval(&mut self) -> Result<bool, String> {
        let deny = self
            .engine
            .eval_rule("data.annexa.gpu.deny".to_string())
            .map_err(|e| e.to_string())?;
        Ok(deny.as_set().map_err(|e| e.to_string())?.is_empty())
    }
}

/// The cel crate running `policy/gpu-pod-vap.yaml` as the API server runs a
/// ValidatingAdmissionPolicy: `object` is `request.object`, `params` the parameters (converted
/// once), `variables` evaluated in order, then every validation must be true.
pub struct Cel {
    env: Arc<cel::Env>,
    params: cel::Value,
    variables: Vec<(String, cel::Program)>,
    validations: Vec<(String, cel::Program)>,
}

impl Default for Cel {
    fn default() -> Self {
        let mut env = cel::Env::stdlib();
        env.add_extension(cel::extensions::strings).unwrap();
        let env = Arc::new(env);
        let vap: serde_json::Value = serde_yaml_ng::from_str(VAP).unwrap();
        let compile = |item: &serde_json::Value, key: &str| {
            let expression = item["expression"].as_str().unwrap();
            let program = env
                .compile(expression)
                .unwrap_or_else(|e| panic!("{expression}: {e}"));
            (item[key].as_str().unwrap().to_string(), program)
        };
        let variables = vap["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| compile(v, "name"))
            .collect();
        let validations = vap["spec"]["validations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| compile(v, "message"))
            .collect();
        let params: serde_json::Value = serde_yaml_ng::from_str(PARAMS).unwrap();
        Self {
            params: cel::to_value(&params).unwrap(),
            env,
            variables,
            validations,
        }
    }
}

impl Cel {
    /// Parses the bytes and converts `request.object` into a CEL value (the conversion step).
    pub fn object(bytes: &[u8]) -> Result<cel::Value, String> {
        let review: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        cel::to_value(&review["request"]["object"]).map_err(|e| e.to_string())
    }

    /// Conversion included: the review's bytes in, the verdict out.
    pub fn allowed_from_bytes(&self, bytes: &[u8]) -> Result<bool, String> {
        Ok(self.failures(Self::object(bytes)?)?.is_empty())
    }

    /// Conversion excluded: an object already converted.
    pub fn allowed(&self, object: &cel::Value) -> Result<bool, String> {
        Ok(self.failures(object.clone())?.is_empty())
    }

    /// The messages of the validations that are not true (an error is a failure, as with
    /// failurePolicy: Fail; it is reported as Err so tests see broken expressions).
    pub fn failures(&self, object: cel::Value) -> Result<Vec<String>, String> {
        let mut context = cel::Context::with_env(self.env.clone());
        context.add_variable_from_value("object", object);
        context.add_variable_from_value("params", self.params.clone());
        let mut variables: HashMap<String, cel::Value> = HashMap::new();
        for (name, program) in &self.variables {
            let value = program
                .execute(&context)
                .map_err(|e| format!("variables.{name}: {e}"))?;
            variables.insert(name.clone(), value);
            context.add_variable_from_value("variables", variables.clone());
        }
        let mut failures = Vec::new();
        for (message, program) in &self.validations {
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => failures.push(message.clone()),
                Ok(other) => return Err(format!("{message}: not a boolean: {other:?}")),
                Err(e) => return Err(format!("{message}: {e}")),
            }
        }
        Ok(failures)
    }
}
