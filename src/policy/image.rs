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
pub enum RegistryRefusal<'a> {
    /// The reference does not parse, so where it comes from is unknown.
    Unparseable(&'a ParseError),
    /// Neither the reference as written nor its normalised form starts with an allowed prefix.
    NotListed,
}

impl RegistryRefusal<'_> {
    /// The end of a finding, after "uses image X, which ": names the list of prefixes.
    pub fn detail<'a>(&'a self, allowed: &'a [String]) -> impl fmt::Display + 'a {
        Detail(self, allowed)
    }
}

struct Detail<'a>(&'a RegistryRefusal<'a>, &'a [String]);

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

/// An image reference as written and as parsed: parse once, then ask each rule's question.
#[derive(Debug)]
pub struct ImageRef<'a> {
    written: &'a str,
    parsed: Result<Reference, ParseError>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(written: &'a str) -> Self {
        Self {
            written,
            parsed: Reference::try_from(written),
        }
    }

    /// Whether the image comes from one of the allowed registry prefixes (any when there is no
    /// list). A prefix matches at a path boundary: `registry.example.com` allows
    /// `registry.example.com/x` but not `registry.example.com.evil.io/x`; `docker.io/library/`
    /// allows a bare `nginx`.
    pub fn registry_check(&self, allowed: Option<&[String]>) -> Result<(), RegistryRefusal<'_>> {
        let Some(allowed) = allowed else {
            return Ok(());
        };
        let reference = self.parsed.as_ref().map_err(RegistryRefusal::Unparseable)?;
        let normalised = reference.whole();
        let listed = allowed.iter().any(|prefix| {
            starts_at_boundary(self.written, prefix) || starts_at_boundary(&normalised, prefix)
        });
        if listed {
            Ok(())
        } else {
            Err(RegistryRefusal::NotListed)
        }
    }

    /// Whether the image is pinned by a sha256 digest (`@sha256:` and 64 hexadecimal digits).
    /// A reference that does not parse is not pinned.
    pub fn pinned(&self) -> bool {
        self.parsed.as_ref().is_ok_and(|reference| {
            reference
                .digest()
                .and_then(|digest| digest.strip_prefix("sha256:"))
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    }

    /// Whether the image names a tag that can move: not pinned by digest and tagged `latest`
    /// or not tagged at all. A reference that does not parse counts as mutable (fail closed).
    pub fn mutable(&self) -> bool {
        !self.pinned()
            && self.parsed.as_ref().map_or(true, |reference| {
                reference.tag().is_none_or(|tag| tag == "latest")
            })
    }
}

/// [`ImageRef::registry_check`] of a reference as written, as a yes or no.
pub fn registry_allowed(image: &str, allowed: Option<&[String]>) -> bool {
    ImageRef::parse(image).registry_check(allowed).is_ok()
}

fn starts_at_boundary(reference: &str, prefix: &str) -> bool {
    reference.strip_prefix(prefix).is_some_and(|rest| {
        prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', ':', '@'])
    })
}

/// [`ImageRef::pinned`] of a reference as written.
pub fn image_pinned(image: &str) -> bool {
    ImageRef::parse(image).pinned()
}

/// [`ImageRef::mutable`] of a reference as written.
pub fn image_mutable(image: &str) -> bool {
    ImageRef::parse(image).mutable()
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
            assert_eq!(
                ImageRef::parse(image).registry_check(Some(&hub)),
                Ok(()),
                "{image}"
            );
        }
        // A Docker Hub user's image is not an official library image.
        assert_eq!(
            ImageRef::parse("evil/nginx:1.27").registry_check(Some(&hub)),
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
            ImageRef::parse("registry.example.com/a:1").registry_check(Some(&[])),
            Err(RegistryRefusal::NotListed)
        );
    }

    /// Empty, upper case, a trailing space, a short digest, an empty path component.
    const UNPARSEABLE: [&str; 5] = [
        "",
        "registry.example.com/ML/Serve:1",
        "registry.example.com/ml/serve:1 ",
        "registry.example.com/ml/serve@sha256:abc",
        "registry.example.com//serve:1",
    ];

    #[test]
    fn unparseable_references_are_refused_with_the_reason() {
        let allowed = list(&["registry.example.com/"]);
        for image in UNPARSEABLE {
            let reference = ImageRef::parse(image);
            let refusal = reference.registry_check(Some(&allowed));
            assert!(
                matches!(refusal, Err(RegistryRefusal::Unparseable(_))),
                "{image:?}: {refusal:?}"
            );
        }
        assert_eq!(
            ImageRef::parse("registry.example.com/ML/x")
                .registry_check(Some(&allowed))
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
