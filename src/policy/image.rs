//! Image references, for the registry (A.8.19), digest (A.8.9) and mutable-tag (A.8.31) rules.
//!
//! References are read with the grammar of the distribution project that container runtimes
//! use (`distribution/reference`), and normalised as they are: a bare `nginx`, `library/nginx`
//! and `docker.io/nginx` are all `docker.io/library/nginx:latest`, and `index.docker.io` is
//! `docker.io`. An allowed registry prefix matches the reference as written or its normalised
//! form, at a path boundary. A reference that does not parse has no known registry and is
//! refused wherever a registry list applies (fail closed).
//!
//! Hand-written on purpose, after measuring the maintained parser (`oci-spec`'s
//! `distribution::Reference`, the same grammar and normalisation, with the same error wording
//! here): it matches with one large regular expression whose compilation, on the first image a
//! process checks, costs about 290 million instructions (a third of a second on the benchmark
//! machine) and 18 MiB of resident memory, more than the 17.7 MiB `annexa run` holds idle
//! (BENCHMARKS.md, "Image references"). A test compares every reading with `oci-spec`'s.

use std::fmt;

/// Why a text is not an image reference (the distribution project's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid reference format")]
    ReferenceInvalidFormat,
}

/// A parsed reference: registry, repository, and the tag (`latest` when neither tag nor digest
/// is given) and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference<'a> {
    registry: &'a str,
    /// `library/` is prepended to a Docker Hub name of one component.
    library: bool,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    fn parse(text: &'a str) -> Result<Self, ParseError> {
        if text.is_empty() {
            return Err(ParseError::NameEmpty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if colon > rest.rfind('/').unwrap_or(0) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if tag.is_some_and(|tag| !valid_tag(tag)) || digest.is_some_and(|d| !valid_digest(d)) {
            return Err(ParseError::ReferenceInvalidFormat);
        }
        // The first component names a registry when it looks like a host: a dot, a port,
        // `localhost`, or upper case (which a repository may not contain).
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_host(first) {
                    return Err(ParseError::ReferenceInvalidFormat);
                }
                (first, path)
            }
            _ => ("docker.io", name),
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(ParseError::ReferenceInvalidFormat);
        }
        if repository.len() > 255 {
            return Err(ParseError::NameTooLong);
        }
        if let Some(digest) = digest {
            let (algorithm, hex) = digest.split_once(':').unwrap_or_default();
            let length = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return Err(ParseError::DigestUnsupported),
            };
            if hex.len() != length {
                return Err(ParseError::DigestInvalidLength);
            }
        }
        let registry = if registry == "index.docker.io" {
            "docker.io"
        } else {
            registry
        };
        Ok(Self {
            registry,
            library: registry == "docker.io" && !repository.contains('/'),
            repository,
            tag: tag.or(if digest.is_none() {
                Some("latest")
            } else {
                None
            }),
            digest,
        })
    }

    /// `registry/repository[:tag][@digest]`, normalised.
    fn whole(&self) -> String {
        let mut out = format!(
            "{}/{}{}",
            self.registry,
            if self.library { "library/" } else { "" },
            self.repository
        );
        if let Some(tag) = self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

/// `[a-z0-9]+` components joined by `.`, `_`, `__` or any run of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(|b| alnum(*b)) || !bytes.last().is_some_and(|b| alnum(*b)) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        if !(matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]`, the host made of dot-separated labels of letters, digits and inner `-`.
fn valid_host(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(|b| word(*b))
        && bytes.len() <= 128
        && bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-')
}

/// `algorithm:hex`, hex at least 32 digits; the algorithm `[A-Za-z][A-Za-z0-9]*` parts joined
/// by `-`, `_`, `+` or `.`.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let part = |p: &str| {
        p.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && p.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['-', '_', '+', '.']).all(part)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

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
    parsed: Result<Reference<'a>, ParseError>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(written: &'a str) -> Self {
        Self {
            written,
            parsed: Reference::parse(written),
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
                .digest
                .and_then(|digest| digest.strip_prefix("sha256:"))
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    }

    /// Whether the image names a tag that can move: not pinned by digest and tagged `latest`
    /// or not tagged at all. A reference that does not parse counts as mutable (fail closed).
    pub fn mutable(&self) -> bool {
        !self.pinned()
            && self.parsed.as_ref().map_or(true, |reference| {
                reference.tag.is_none_or(|tag| tag == "latest")
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

    /// The same readings as the maintained parser: normalised form, or the same error.
    #[test]
    fn references_read_as_oci_spec_reads_them() {
        let digest = &DIGEST[7..];
        let cases = [
            "busybox".to_string(),
            "test.com:tag".to_string(),
            "test.com:5000".to_string(),
            "test.com/repo:tag".to_string(),
            "test:5000/repo".to_string(),
            "test:5000/repo:tag".to_string(),
            "test:5000/repo@sha256:".to_string() + digest,
            "test:5000/repo:tag@sha256:".to_string() + digest,
            "lowercase:Uppercase".to_string(),
            "foo_bar.com:8080".to_string(),
            "foo/foo_bar.com:8080".to_string(),
            "opensuse/leap:15.3".to_string(),
            "index.docker.io/library/nginx".to_string(),
            "docker.io/nginx".to_string(),
            "localhost/repo".to_string(),
            "localhost:5000/a/b-c__d.e---f:v1.2_3-x".to_string(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".to_string(),
            "a".repeat(127) + "/" + &"b".repeat(127) + ":tag",
            "a/".repeat(128) + "b",
            "Uppercase:tag".to_string(),
            "test:5000/Uppercase/lowercase:tag".to_string(),
            "aa/asdf$$^/aa".to_string(),
            "-foo.com/bar".to_string(),
            "foo-.com/bar".to_string(),
            "foo.com:/bar".to_string(),
            "foo.com:abc/bar".to_string(),
            "repo:".to_string(),
            "repo:-tag".to_string(),
            "repo:".to_string() + &"t".repeat(129),
            "repo@sha256:abc".to_string(),
            "repo@sha256:".to_string() + &"g".repeat(64),
            "repo@md5:".to_string() + &"a".repeat(32),
            "repo@sha512:".to_string() + &"a".repeat(128),
            "repo@sha512:".to_string() + &"a".repeat(64),
            "repo@".to_string(),
            "a//b".to_string(),
            "a/b/".to_string(),
            "_a".to_string(),
            "a_".to_string(),
            "a___b".to_string(),
            "a.-b".to_string(),
            "".to_string(),
        ]
        .into_iter()
        .chain(UNPARSEABLE.iter().map(|s| s.to_string()));
        for text in cases {
            let ours = Reference::parse(&text)
                .map(|r| r.whole())
                .map_err(|e| e.to_string());
            let theirs = oci_spec::distribution::Reference::try_from(text.as_str())
                .map(|r| r.whole())
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{text:?}");
        }
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
