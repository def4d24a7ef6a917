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
    /// A prefix of at least 4 hex digits is enough when it is unambiguous.
    #[arg(long, value_name = "sha256:…")]
    pub digest: Option<String>,
    /// The release fingerprint you reviewed (`status.pendingRelease.fingerprint`); refused
    /// unless the model requests exactly that release now. A prefix is enough, as for --digest.
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

/// A release a model knows of (the one its spec requests, the one serving, earlier
/// promotions), a candidate for a digest or fingerprint prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownRelease {
    /// How the model knows it: `requested now`, `serving`, `promoted earlier`.
    pub what: &'static str,
    pub fingerprint: String,
    pub digest: String,
    pub version: String,
}

/// The releases of `model`, the requested one first, each fingerprint once.
pub fn known_releases(model: &ModelDeployment) -> Vec<KnownRelease> {
    let requested = model.spec.release();
    let mut known = vec![KnownRelease {
        what: "requested now",
        fingerprint: requested.fingerprint(),
        digest: requested.model.digest.clone(),
        version: requested.model.version.clone(),
    }];
    if let Some(status) = &model.status {
        let serving = status
            .serving_release
            .iter()
            .map(|s| ("serving", &s.record));
        let earlier = status
            .promotions
            .iter()
            .rev()
            .map(|r| ("promoted earlier", r));
        for (what, record) in serving.chain(earlier) {
            if known.iter().all(|k| k.fingerprint != record.fingerprint) {
                known.push(KnownRelease {
                    what,
                    fingerprint: record.fingerprint.clone(),
                    digest: record.digest.clone(),
                    version: record.version.clone(),
                });
            }
        }
    }
    known
}

/// Which value of a release `--digest` or `--release` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Digest,
    Fingerprint,
}

/// Checks that `value` (a full digest or an unambiguous prefix, with or without `sha256:`)
/// names the release `model` requests now; else says which release it names, or lists the
/// candidates when it is ambiguous or unknown.
pub fn resolve(named: Named, value: &str, model: &str, known: &[KnownRelease]) -> Result<()> {
    let (flag, field) = match named {
        Named::Digest => ("--digest", "weights digest"),
        Named::Fingerprint => ("--release", "release fingerprint"),
    };
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    if hex.len() < 4 || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "{flag} {value:?} is not a digest: give sha256: and 64 hex digits, or at least the first 4 of them"
        )));
    }
    let hex = hex.to_ascii_lowercase();
    let of = |k: &KnownRelease| match named {
        Named::Digest => k.digest.clone(),
        Named::Fingerprint => k.fingerprint.clone(),
    };
    let listing = |releases: &[&KnownRelease]| -> String {
        releases
            .iter()
            .map(|k| {
                format!(
                    "\n  {:<16} release {}  weights {}  version {}",
                    k.what, k.fingerprint, k.digest, k.version
                )
            })
            .collect()
    };
    let matching: Vec<&KnownRelease> = known
        .iter()
        .filter(|k| {
            of(k)
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(&hex))
        })
        .collect();
    let mut values: Vec<String> = matching.iter().map(|k| of(k)).collect();
    values.dedup();
    values.sort();
    values.dedup();
    let requested = known.first();
    match values.as_slice() {
        [] => Err(Error::Config(format!(
            "no release of md/{model} has a {field} starting with {value}; its releases:{}",
            listing(&known.iter().collect::<Vec<_>>())
        ))),
        [one] if requested.is_some_and(|r| of(r) == *one) => Ok(()),
        [one] => Err(Error::Config(format!(
            "{value} is the {field} {one} of a release md/{model} does not request now; \
             review the release it requests now:{}",
            listing(&known.iter().collect::<Vec<_>>())
        ))),
        _ => Err(Error::Config(format!(
            "{flag} {value} is ambiguous: {} {field}s of md/{model} start with it; give more digits:{}",
            values.len(),
            listing(&matching)
        ))),
    }
}

pub async fn run(args: &ApproveArgs) -> Result<()> {
    let name = model_name(&args.target)?;
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
    let known = known_releases(&model);
    if let Some(digest) = &args.digest {
        resolve(Named::Digest, digest, name, &known)?;
    }
    if let Some(expected) = &args.release {
        resolve(Named::Fingerprint, expected, name, &known)?;
    }
    let model_uid =
        model.metadata.uid.clone().ok_or_else(|| {
            Error::Config(format!("ModelDeployment {namespace}/{name} has no UID"))
        })?;
    println!("{}", describe_release(&namespace, name, &release));
    if let Some(serving) = model
        .status
        .as_ref()
        .and_then(|s| s.serving_release.as_ref())
        .filter(|s| s.record.fingerprint == fingerprint)
    {
        // Nothing is pending: say so rather than let the reviewer believe they unblocked it.
        println!(
            "  note:    this release already serves (approved by {}); nothing is pending",
            if serving.record.approvers.is_empty() {
                "nobody: no approvals required".to_string()
            } else {
                serving.record.approvers.join(", ")
            }
        );
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
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Cluster {
            message: format!(
                "{username} already recorded a decision on release {fingerprint} of md/{name}; approvals are immutable"
            ),
            source: kube::Error::Api(status),
        }),
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

    fn release(what: &'static str, fingerprint: &str, digest: &str) -> KnownRelease {
        KnownRelease {
            what,
            fingerprint: format!("sha256:{fingerprint}"),
            digest: format!("sha256:{digest}"),
            version: "1.0.0".into(),
        }
    }

    #[test]
    fn prefixes_name_the_requested_release_or_say_what_they_name() {
        let known = [
            release("requested now", &"ab12".repeat(16), &"7fb5".repeat(16)),
            release("serving", &"ab19".repeat(16), &"7fb5".repeat(16)),
            release("promoted earlier", &"c0de".repeat(16), &"1111".repeat(16)),
        ];
        // The requested release's digest, full or short, with or without sha256:; the same
        // digest in another release is the same value, not an ambiguity.
        for value in [
            "7fb5",
            "sha256:7fb57fb5",
            "7FB57FB5",
            &format!("sha256:{}", "7fb5".repeat(16)),
        ] {
            resolve(Named::Digest, value, "m", &known).unwrap();
        }
        resolve(Named::Fingerprint, "ab12", "m", &known).unwrap();
        // Ambiguous: two fingerprints start with ab1; the error lists both, not the third.
        let e = resolve(Named::Fingerprint, "ab1", "m", &known)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--release \"ab1\" is not a digest"), "{e}");
        let e = resolve(Named::Fingerprint, "sha256:ab1", "m", &known)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a digest"), "{e}");
        let known2 = [
            release("requested now", &"ab12".repeat(16), &"7fb5".repeat(16)),
            release("serving", &"ab19".repeat(16), &"7fb5".repeat(16)),
        ];
        let e = resolve(Named::Fingerprint, "ab1a", "m", &known2)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("no release of md/m has a release fingerprint starting with ab1a"),
            "{e}"
        );
        let mut known3 = known2.to_vec();
        known3[1].fingerprint = format!("sha256:ab12{}", "0".repeat(60));
        let e = resolve(Named::Fingerprint, "sha256:ab12", "m", &known3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is ambiguous: 2 release fingerprints"), "{e}");
        assert!(e.contains("requested now") && e.contains("serving"), "{e}");
        // The serving release's fingerprint is named, but it is not what is requested.
        let e = resolve(Named::Fingerprint, "ab19", "m", &known)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not request now"), "{e}");
        assert!(e.contains(&format!("sha256:{}", "ab19".repeat(16))), "{e}");
        // An earlier digest, and an unknown one.
        let e = resolve(Named::Digest, "1111", "m", &known)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not request now") && e.contains("promoted earlier"),
            "{e}"
        );
        let e = resolve(Named::Digest, "dead", "m", &known)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no release of md/m has a weights digest starting with dead"),
            "{e}"
        );
        assert!(e.contains("7fb5") && e.contains("1111"), "{e}");
    }
}
