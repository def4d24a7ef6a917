//! `annexa approve md/NAME`: shows the release the model requests (fingerprint, version, weights
//! digest, image) and records the current user's decision on exactly that release as a
//! ModelApproval bound to the model's UID. The approver and groups are who the API server says
//! the caller is (a SelfSubjectReview); the webhook and the ValidatingAdmissionPolicy refuse an
//! approval in anyone else's name or with a group the caller is not in.

use crate::api::{
    API_VERSION, ApprovalDecision, ApprovedRelease, Approver, ModelApproval, ModelApprovalSpec,
    ModelDeployment, ReleaseSpec,
};
use crate::error::{Error, Result};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The ModelDeployment, as `md/NAME`, `modeldeployment/NAME` or `NAME`.
    #[arg(value_name = "md/NAME")]
    pub target: String,
    /// The weights digest you reviewed; refused unless the model requests it now.
    #[arg(long, value_name = "sha256:…")]
    pub digest: Option<String>,
    /// The release fingerprint you reviewed (`status.pendingRelease.fingerprint`); refused
    /// unless the model requests exactly that release now.
    #[arg(long, value_name = "sha256:…")]
    pub release: Option<String>,
    /// Record a rejection instead of an approval (blocks the digest).
    #[arg(long)]
    pub reject: bool,
    /// Why (required with --reject).
    #[arg(long)]
    pub reason: Option<String>,
    /// Namespace of the ModelDeployment (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Parses `md/NAME`, `modeldeployment/NAME`, `modeldeployments.annexa.dev/NAME` or `NAME`.
pub fn model_name(target: &str) -> Result<&str> {
    let name = match target.split_once('/') {
        None => target,
        Some((kind, name)) => {
            let kind = kind.to_ascii_lowercase();
            if !matches!(
                kind.as_str(),
                "md" | "modeldeployment"
                    | "modeldeployments"
                    | "modeldeployment.annexa.dev"
                    | "modeldeployments.annexa.dev"
            ) {
                return Err(Error::Config(format!(
                    "{target:?}: only ModelDeployments (md/NAME) can be approved"
                )));
            }
            name
        }
    };
    if name.is_empty() {
        return Err(Error::Config(format!("{target:?}: no name given")));
    }
    Ok(name)
}

/// Name of the approval object: one per model, release and approver.
pub fn approval_name(model: &str, digest: &str, user: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!(
        "{model}-{}-{}",
        hex.get(..12).unwrap_or(hex),
        user.trim_matches('-')
    );
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// What the reviewer is about to approve, as printed before the decision is recorded.
pub fn describe_release(namespace: &str, name: &str, release: &ReleaseSpec) -> String {
    let mut out = format!(
        "md/{name} in {namespace} requests release {}\n  model:   {} {}\n  weights: {}\n  uri:     {}\n  image:   {}",
        release.fingerprint(),
        release.model.name,
        release.model.version,
        release.model.digest,
        release.model.uri.as_deref().unwrap_or("(none)"),
        release.image,
    );
    if !release.training_datasets.is_empty() {
        out.push_str(&format!(
            "\n  datasets: {}",
            release.training_datasets.join(", ")
        ));
    }
    out
}

pub async fn run(args: &ApproveArgs) -> Result<()> {
    let name = model_name(&args.target)?;
    for (flag, value) in [("--digest", &args.digest), ("--release", &args.release)] {
        if let Some(value) = value
            && !crate::policy::model_deployment::is_digest(value)
        {
            return Err(Error::Config(format!(
                "{flag} {value:?} is not a digest (sha256: followed by 64 lowercase hex digits)"
            )));
        }
    }
    if args.reject && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::Config(
            "--reject needs --reason: say why the release is rejected".to_string(),
        ));
    }
    let client = Client::try_default().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let models: Api<ModelDeployment> = Api::namespaced(client.clone(), &namespace);
    let model = models.get_opt(name).await?.ok_or_else(|| {
        Error::Config(format!("ModelDeployment {namespace}/{name} does not exist"))
    })?;
    // The release is computed from the spec the API server holds, not read from status.
    let release = model.spec.release();
    let fingerprint = release.fingerprint();
    if let Some(digest) = &args.digest
        && *digest != release.model.digest
    {
        return Err(Error::Config(format!(
            "ModelDeployment {namespace}/{name} requests digest {}, not {digest}: review the release it requests now",
            release.model.digest
        )));
    }
    if let Some(expected) = &args.release
        && *expected != fingerprint
    {
        return Err(Error::Config(format!(
            "ModelDeployment {namespace}/{name} requests release {fingerprint}, not {expected}: it changed since you reviewed it"
        )));
    }
    let model_uid =
        model.metadata.uid.clone().ok_or_else(|| {
            Error::Config(format!("ModelDeployment {namespace}/{name} has no UID"))
        })?;
    println!("{}", describe_release(&namespace, name, &release));
    let review: SelfSubjectReview = Api::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    let username = user.username.ok_or_else(|| {
        Error::Config(
            "the API server did not say who you are (SelfSubjectReview has no username)".into(),
        )
    })?;
    let approval = ModelApproval {
        metadata: ObjectMeta {
            name: Some(approval_name(name, &fingerprint, &username)),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: ModelApprovalSpec {
            model_deployment: name.to_string(),
            model_uid,
            release: ApprovedRelease {
                fingerprint: fingerprint.clone(),
                digest: release.model.digest.clone(),
                version: release.model.version.clone(),
                image: release.image.clone(),
            },
            decision: if args.reject {
                ApprovalDecision::Reject
            } else {
                ApprovalDecision::Approve
            },
            reason: args.reason.clone(),
            approver: Approver {
                username: username.clone(),
                groups: user.groups.unwrap_or_default(),
            },
        },
        status: None,
    };
    let approvals: Api<ModelApproval> = Api::namespaced(client, &namespace);
    match approvals.create(&PostParams::default(), &approval).await {
        Ok(created) => {
            println!(
                "modelapproval.{}/{} created: {} {} md/{name} {} as {username}",
                API_VERSION.split('/').next().unwrap_or_default(),
                created.metadata.name.unwrap_or_default(),
                namespace,
                if args.reject { "rejects" } else { "approves" },
                fingerprint
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Config(format!(
            "{username} already recorded a decision on release {fingerprint} of md/{name}; approvals are immutable"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_names() {
        assert_eq!(model_name("md/fraud").unwrap(), "fraud");
        assert_eq!(
            model_name("modeldeployments.annexa.dev/fraud").unwrap(),
            "fraud"
        );
        assert_eq!(model_name("fraud").unwrap(), "fraud");
        assert!(model_name("deploy/fraud").is_err());
        assert!(model_name("md/").is_err());
        let d = "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(
            approval_name("fraud", d, "Alice@Example.com"),
            "fraud-abcdef012345-alice-example-com"
        );
        assert!(approval_name(&"m".repeat(80), d, "bob").len() <= 63);
    }
}
