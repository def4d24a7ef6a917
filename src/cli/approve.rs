//! `annexa approve md/NAME --digest sha256:…`: records the current user's decision on a model
//! digest as a ModelApproval. The approver is who the API server says the caller is (a
//! SelfSubjectReview), and the webhook refuses an approval in anyone else's name.

use crate::api::{
    API_VERSION, ApprovalDecision, Approver, ModelApproval, ModelApprovalSpec, ModelDeployment,
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
    /// The exact weights digest you reviewed; it must be the one the model requests now.
    #[arg(long, value_name = "sha256:…")]
    pub digest: String,
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

/// Name of the approval object: one per model, digest and approver.
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

pub async fn run(args: &ApproveArgs) -> Result<()> {
    let name = model_name(&args.target)?;
    if !crate::policy::model_deployment::is_digest(&args.digest) {
        return Err(Error::Config(format!(
            "--digest {:?} is not a digest (sha256: followed by 64 lowercase hex digits)",
            args.digest
        )));
    }
    if args.reject && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::Config(
            "--reject needs --reason: say why the digest is rejected".to_string(),
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
    if model.spec.model.digest != args.digest {
        return Err(Error::Config(format!(
            "ModelDeployment {namespace}/{name} requests {}, not {}: review the digest it requests now",
            model.spec.model.digest, args.digest
        )));
    }
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
            name: Some(approval_name(name, &args.digest, &username)),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: ModelApprovalSpec {
            model_deployment: name.to_string(),
            digest: args.digest.clone(),
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
                args.digest
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Config(format!(
            "{username} already recorded a decision on {} of md/{name}; approvals are immutable",
            args.digest
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
