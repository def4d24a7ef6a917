//! Image references, for the registry (A.8.19), digest (A.8.9) and mutable-tag (A.8.31) rules.
//!
//! References are parsed with `oci-spec`'s `distribution::Reference`, the grammar of the
//! distribution project that container runtimes use, and normalised as they are: a bare
//! `nginx`, `library/nginx` and `docker.io/nginx` are all `docker.io/library/nginx:latest`, and
//! `index.docker.io` is `docker.io`. An allowed registry prefix matches the reference as written
//! or its normalised form, at a path boundary. A reference that does not parse has no known
//! registry and is refused wherever a registry list applies (fail closed).

use oci_spec::distribution::{ParseError, Reference};
use std::fmt;

/// Why an image is refused by a list of allowed registry prefixes.
#[derive(Debug, PartialEq, Eq)]
pub enum RegistryRefusal {
    /// The reference does not parse, so where it comes from is unknown.
    Unparseable(ParseError),
    /// Neither the reference as written nor its normalised form starts with an allowed prefix.
    NotListed,
}

impl RegistryRefusal {
    /// The end of a finding, after "uses image X, which ": names the list of prefixes.
    pub fn detail<'a>(&'a self, allowed: &'a [String]) -> impl fmt::Display + 'a {
        Detail(self, allowed)
    }
}

struct Detail<'a>(&'a RegistryRefusal, &'a [String]);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = self.1;
        match self.0 {
            RegistryRefusal::NotListed => write!(f, "is not from an allowed registry {allowed:?}"),
            RegistryRefusal::Unparseable(error) => write!(
                f,
                "is not a valid image reference ({error}), so not from an allowed registry {allowed:?}"
            ),
        }
    }
}

/// Whether the image comes from one of the allowed registry prefixes (any when there is no list).
///
/// A prefix matches at a path boundary: `registry.example.com` allows
/// `registry.example.com/x` but not `registry.example.com.evil.io/x`; `docker.io/library/`
/// allows a bare `nginx`.
pub fn registry_check(image: &str, allowed: Option<&[String]>) -> Result<(), RegistryRefusal> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    let reference = Reference::try_from(image).map_err(RegistryRefusal::Unparseable)?;
    let normalised = reference.whole();
    let listed = allowed
        .iter()
        .any(|prefix| starts_at_boundary(image, prefix) || starts_at_boundary(&normalised, prefix));
    if listed {
        Ok(())
    } else {
        Err(RegistryRefusal::NotListed)
    }
}

/// [`registry_check`] as a yes or no.
pub fn registry_allowed(image: &str, allowed: Option<&[String]>) -> bool {
    registry_check(image, allowed).is_ok()
}

fn starts_at_boundary(reference: &str, prefix: &str) -> bool {
    reference.strip_prefix(prefix).is_some_and(|rest| {
        prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', ':', '@'])
    })
}

/// Whether the image is pinned by a sha256 digest (`@sha256:` and 64 hexadecimal digits).
/// A reference that does not parse is not pinned.
pub fn image_pinned(image: &str) -> bool {
    Reference::try_from(image).is_ok_and(|reference| {
        reference
            .digest()
            .and_then(|digest| digest.strip_prefix("sha256:"))
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// Whether the image names a tag that can move: not pinned by digest and tagged `latest` or not
/// tagged at all. A reference that does not parse counts as mutable (fail closed).
pub fn image_mutable(image: &str) -> bool {
    if image_pinned(image) {
        return false;
    }
    Reference::try_from(image).map_or(true, |reference| {
        reference.tag().is_none_or(|tag| tag == "latest")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn list(prefixes: &[&str]) -> Vec<String> {
        prefixes.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn docker_hub_short_names_match_their_normalised_registry() {
        let hub = list(&["docker.io/library/"]);
        for image in [
            "nginx",
            "nginx:1.27",
            "library/nginx:1.27",
            "docker.io/nginx",
            "docker.io/library/nginx:1.27",
            "index.docker.io/library/nginx",
        ] {
            assert_eq!(registry_check(image, Some(&hub)), Ok(()), "{image}");
        }
        // A Docker Hub user's image is not an official library image.
        assert_eq!(
            registry_check("evil/nginx:1.27", Some(&hub)),
            Err(RegistryRefusal::NotListed)
        );
        assert!(registry_allowed("evil/nginx", Some(&list(&["docker.io/"]))));
        // Without a registry part, a name is on Docker Hub, not on an allowed registry.
        assert!(!registry_allowed(
            "ml/serve:1",
            Some(&list(&["registry.example.com/"]))
        ));
    }

    #[test]
    fn prefixes_match_at_a_path_boundary_only() {
        for prefix in ["registry.example.com/", "registry.example.com"] {
            let allowed = list(&[prefix]);
            assert!(registry_allowed(
                "registry.example.com/ml/serve:1",
                Some(&allowed)
            ));
            assert!(
                !registry_allowed("registry.example.com.evil.io/ml/serve:1", Some(&allowed)),
                "{prefix}"
            );
            assert!(!registry_allowed(
                "registry.example.comm/ml/serve:1",
                Some(&allowed)
            ));
        }
        let repository = list(&["ghcr.io/example/serve"]);
        assert!(registry_allowed(
            "ghcr.io/example/serve:1",
            Some(&repository)
        ));
        assert!(registry_allowed(
            &format!("ghcr.io/example/serve@{DIGEST}"),
            Some(&repository)
        ));
        assert!(!registry_allowed(
            "ghcr.io/example/serve-evil:1",
            Some(&repository)
        ));
    }

    #[test]
    fn no_list_allows_any_and_an_empty_list_allows_none() {
        assert!(registry_allowed("anything/at:all", None));
        assert!(registry_allowed("NOT a reference", None));
        assert_eq!(
            registry_check("registry.example.com/a:1", Some(&[])),
            Err(RegistryRefusal::NotListed)
        );
    }

    #[test]
    fn unparseable_references_are_refused_with_the_reason() {
        let allowed = list(&["registry.example.com/"]);
        for image in [
            "",
            "registry.example.com/ML/Serve:1",
            "registry.example.com/ml/serve:1 ",
            "registry.example.com/ml/serve@sha256:abc",
            "registry.example.com//serve:1",
        ] {
            let refusal = registry_check(image, Some(&allowed));
            assert!(
                matches!(refusal, Err(RegistryRefusal::Unparseable(_))),
                "{image:?}: {refusal:?}"
            );
        }
        assert_eq!(
            registry_check("registry.example.com/ML/x", Some(&allowed))
                .map_err(|r| r.detail(&allowed).to_string()),
            Err(r#"is not a valid image reference (invalid reference format), so not from an allowed registry ["registry.example.com/"]"#.to_string())
        );
    }

    #[test]
    fn digests_pin_only_with_sha256_of_the_right_length() {
        assert!(image_pinned(&format!(
            "registry.example.com/ml/serve@{DIGEST}"
        )));
        assert!(image_pinned(&format!("nginx:1.27@{DIGEST}")));
        assert!(!image_pinned("registry.example.com/ml/serve:1.0"));
        assert!(!image_pinned(&format!(
            "registry.example.com/ml/serve@{}",
            &DIGEST[..70]
        )));
        assert!(!image_pinned(&format!(
            "registry.example.com/ml/serve@{DIGEST}0"
        )));
        assert!(!image_pinned(&format!(
            "registry.example.com/ml/serve@sha512:{}",
            "a".repeat(128)
        )));
        assert!(!image_pinned(&format!(
            "registry.example.com/ml/serve@sha256:{}",
            "g".repeat(64)
        )));
        assert!(!image_pinned(&format!("Registry/ML@{DIGEST}")));
    }

    #[test]
    fn latest_untagged_and_unparseable_references_are_mutable() {
        assert!(image_mutable("registry.example.com/ml/serve"));
        assert!(image_mutable("registry.example.com/ml/serve:latest"));
        assert!(image_mutable("registry.example.com/ml/ser ve:1.0"));
        assert!(!image_mutable("registry.example.com/ml/serve:1.0"));
        assert!(!image_mutable("localhost:5000/serve:1.0"));
        assert!(!image_mutable(&format!(
            "registry.example.com/ml/serve@{DIGEST}"
        )));
        assert!(!image_mutable(&format!(
            "registry.example.com/ml/serve:latest@{DIGEST}"
        )));
    }
}
