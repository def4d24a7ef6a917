//! Executed documentation: the shell blocks of README.md and docs/operating.md, run in order
//! against the stand-in as the users they name, so that a walkthrough cannot rot.
//!
//! The conventions (also in e2e/README.md):
//! - every fenced block whose info string is `sh` is run, line by line (a line ending in `\`
//!   continues on the next), in a scratch folder that links `examples/`, `charts/`, `crds/`
//!   and `admission/` of the repository, with the built `annexa` first on PATH;
//! - a block runs as the cluster administrator until a comment line `# as NAME` switches to
//!   NAME (one of [`crate::tour::doc_users`]), until the end of the block;
//! - a command must exit 0, unless its trailing comment says `exit N`;
//! - `cargo run [--release] -- ARGS` runs the built `annexa ARGS`;
//! - a block preceded by `<!-- docs-test: skip REASON -->` is not run, and commands the
//!   stand-in cannot run (Helm, Docker, the Deployment's pods, the test suite itself) are not
//!   run either: both are listed by name with their reason. `helm install`/`helm upgrade` of
//!   the chart are done the e2e way (the rendered chart applied, `--set` values included).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::HarnessError;
use crate::tour::{Tour, set_to_json, upgrade_chart};

/// A fenced `sh` block.
#[derive(Clone, Debug)]
pub struct Block {
    pub file: String,
    /// Line of the opening fence (1-based).
    pub line: usize,
    /// The block's lines with their line numbers, the fence's indentation removed.
    pub lines: Vec<(usize, String)>,
    /// Why the block is not run (`<!-- docs-test: skip REASON -->` before it).
    pub skip: Option<String>,
    /// The nearest heading above the block.
    pub section: String,
}

/// The `sh` blocks of a Markdown text.
pub fn sh_blocks(markdown: &str, file: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // The open `sh` block (with its indentation and fence), or the fence of another block.
    let mut current: Option<(Block, usize, String)> = None;
    let mut other_fence: Option<String> = None;
    let mut pending_skip: Option<String> = None;
    let mut section = String::new();
    for (index, raw) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        if let Some(fence) = &other_fence {
            if trimmed.trim_end() == fence.as_str() {
                other_fence = None;
            }
            continue;
        }
        if let Some((block, block_indent, fence)) = current.as_mut() {
            if trimmed.trim_end() == fence.as_str() {
                if let Some((block, _, _)) = current.take() {
                    blocks.push(block);
                }
                continue;
            }
            let text = match raw.get(..*block_indent) {
                Some(head) if head.trim().is_empty() => &raw[*block_indent..],
                _ => trimmed,
            };
            block.lines.push((number, text.to_string()));
            continue;
        }
        if indent == 0
            && let Some(heading) = trimmed.strip_prefix('#')
        {
            section = heading.trim_start_matches('#').trim().to_string();
        }
        if let Some(rest) = trimmed.strip_prefix("<!-- docs-test: skip") {
            pending_skip = Some(rest.trim_end().trim_end_matches("-->").trim().to_string());
            continue;
        }
        if trimmed.starts_with("```") {
            let fence_len = trimmed.chars().take_while(|c| *c == '`').count();
            let info = trimmed[fence_len..].trim();
            let fence = "`".repeat(fence_len);
            if info == "sh" {
                let block = Block {
                    file: file.to_string(),
                    line: number,
                    lines: Vec::new(),
                    skip: pending_skip.take(),
                    section: section.clone(),
                };
                current = Some((block, indent, fence));
            } else {
                pending_skip = None;
                other_fence = Some(fence);
            }
            continue;
        }
        if !trimmed.is_empty() {
            pending_skip = None;
        }
    }
    blocks
}

/// One command of a block.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Run {
        at: String,
        user: String,
        command: String,
        expect: i32,
    },
    /// `helm install`/`helm upgrade` of the chart: the e2e installation (done before the
    /// first command) or, for an upgrade, the rendered chart applied again with these values.
    Chart {
        at: String,
        command: String,
        upgrade: bool,
        values: Vec<serde_json::Value>,
    },
    Skip {
        at: String,
        command: String,
        reason: String,
    },
}

/// Commands the stand-in cannot run, by prefix, and why.
const NOT_ON_THE_STANDIN: &[(&str, &str)] = &[
    (
        "helm uninstall",
        "no Helm release on the stand-in (the chart is applied without Helm)",
    ),
    (
        "kubectl -n annexa-system rollout",
        "the stand-in runs no pods: `annexa run` is a local process, not the chart's Deployment",
    ),
    (
        "kubectl -n annexa-system logs",
        "the stand-in runs no pods: `annexa run` is a local process, not the chart's Deployment",
    ),
    (
        "kubectl -n annexa-system describe deployment",
        "the stand-in runs no pods: `annexa run` is a local process, not the chart's Deployment",
    ),
    (
        "kubectl -n annexa-system scale",
        "the stand-in runs no pods: `annexa run` is a local process, not the chart's Deployment",
    ),
    ("docker ", "no Docker engine where the suite runs"),
    ("argocd ", "no Argo CD on the stand-in"),
    (
        "bash scripts/test.sh",
        "the test suite itself (CI runs it; this test is part of it)",
    ),
    (
        "bash scripts/tour.sh",
        "starts the tour, which stays running (the suite runs it to its ready point in e2e/tests/docs.rs)",
    ),
    (
        "bash charts/tests/run.sh",
        "the chart tests: CI runs them as `cargo test --test chart`",
    ),
    (
        "cargo install",
        "installs into ~/.cargo/bin; the suite uses the binary it built",
    ),
    ("git clone", "no network where the suite runs"),
    (
        "cargo build",
        "the suite runs the binaries cargo test built",
    ),
];

/// Splits a line into its command and trailing comment (a `#` after whitespace, outside
/// quotes).
pub fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut single = false;
    let mut double = false;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => {
                return (line[..i].trim_end(), Some(line[i + 1..].trim()));
            }
            _ => {}
        }
        previous = c;
    }
    (line.trim_end(), None)
}

fn expected_exit(comment: Option<&str>) -> i32 {
    let Some(comment) = comment else { return 0 };
    let words: Vec<&str> = comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[0] == "exit")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

/// The steps of a block, in order.
pub fn steps(block: &Block) -> Result<Vec<Step>, String> {
    let at = |line: usize| format!("{}:{line}", block.file);
    if let Some(reason) = &block.skip {
        let text: Vec<&str> = block.lines.iter().map(|(_, l)| l.as_str()).collect();
        return Ok(vec![Step::Skip {
            at: at(block.line),
            command: text.join("\n"),
            reason: reason.clone(),
        }]);
    }
    let mut out = Vec::new();
    let mut user = "admin".to_string();
    let mut lines = block.lines.iter().peekable();
    while let Some((number, line)) = lines.next() {
        let mut line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            let comment = line.trim_start_matches('#').trim();
            if let Some(name) = comment.strip_prefix("as ") {
                user = name
                    .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            continue;
        }
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, next)) => {
                    line.push(' ');
                    line.push_str(next.trim());
                }
                None => return Err(format!("{}: a continued line ends the block", at(*number))),
            }
        }
        let (command, comment) = split_comment(&line);
        let command = command.to_string();
        if let Some((_, reason)) = NOT_ON_THE_STANDIN
            .iter()
            .find(|(prefix, _)| command.starts_with(prefix))
        {
            out.push(Step::Skip {
                at: at(*number),
                command,
                reason: reason.to_string(),
            });
            continue;
        }
        if (command.starts_with("helm install ") || command.starts_with("helm upgrade "))
            && command.contains("charts/annexa")
        {
            let words: Vec<&str> = command.split_whitespace().collect();
            let mut values = Vec::new();
            for pair in words.windows(2) {
                if pair[0] == "--set" {
                    values.push(set_to_json(pair[1]).map_err(|e| format!("{}: {e}", at(*number)))?);
                }
            }
            out.push(Step::Chart {
                at: at(*number),
                upgrade: command.starts_with("helm upgrade "),
                command,
                values,
            });
            continue;
        }
        let command = rewrite_cargo_run(&command);
        out.push(Step::Run {
            at: at(*number),
            user: user.clone(),
            command,
            expect: expected_exit(comment),
        });
    }
    Ok(out)
}

/// `cargo run [--release] [-p annexa] -- ARGS` is the built `annexa ARGS`.
fn rewrite_cargo_run(command: &str) -> String {
    for prefix in [
        "cargo run --release -- ",
        "cargo run -- ",
        "cargo run --release -p annexa -- ",
        "cargo run -p annexa -- ",
    ] {
        if let Some(rest) = command.strip_prefix(prefix) {
            return format!("annexa {rest}");
        }
    }
    command.to_string()
}

/// What a run did, for the test's log and assertions.
#[derive(Default, Debug)]
pub struct Transcript {
    /// `(at, user, command)` of every command run, in order.
    pub ran: Vec<(String, String, String)>,
    /// `(at, command, reason)` of every command not run.
    pub skipped: Vec<(String, String, String)>,
    /// Everything printed, for the log.
    pub text: String,
}

impl Transcript {
    pub fn skipped_list(&self) -> String {
        self.skipped
            .iter()
            .map(|(at, command, reason)| {
                format!(
                    "  {at}: `{}`: {reason}\n",
                    command.lines().next().unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Runs documentation blocks against a [`Tour`] installation.
pub struct Runner<'a> {
    pub tour: &'a Tour,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// Echo each command and its output to stdout as it runs (the tour).
    pub echo: bool,
}

impl<'a> Runner<'a> {
    /// A runner working in `workdir`, which gets links to the repository's folders the docs
    /// name.
    pub fn new(tour: &'a Tour, workdir: &Path) -> Result<Self, HarnessError> {
        for folder in ["examples", "charts", "crds", "admission"] {
            let link = workdir.join(folder);
            if !link.exists() {
                std::os::unix::fs::symlink(tour.repo.join(folder), &link).map_err(|source| {
                    HarnessError::Io {
                        what: format!("linking {folder} into the scratch folder"),
                        source,
                    }
                })?;
            }
        }
        Ok(Self {
            tour,
            workdir: workdir.to_path_buf(),
            timeout: Duration::from_secs(180),
            echo: false,
        })
    }

    fn say(&self, transcript: &mut Transcript, text: &str) {
        if self.echo {
            print!("{text}");
        }
        transcript.text.push_str(text);
    }

    /// Runs `steps`; stops at the first command whose exit status is not the expected one.
    pub fn run(&self, steps: &[Step], transcript: &mut Transcript) -> Result<(), HarnessError> {
        for step in steps {
            match step {
                Step::Skip {
                    at,
                    command,
                    reason,
                } => {
                    transcript
                        .skipped
                        .push((at.clone(), command.clone(), reason.clone()));
                    self.say(
                        transcript,
                        &format!(
                            "\n{at}: not run: `{}`: {reason}\n",
                            command.lines().next().unwrap_or_default()
                        ),
                    );
                }
                Step::Chart {
                    at,
                    command,
                    upgrade,
                    values,
                } => {
                    if *upgrade {
                        self.say(
                            transcript,
                            &format!("\n{at}: $ {command}\n  (on the stand-in: the rendered chart applied again, without its Deployment)\n"),
                        );
                        upgrade_chart(&self.tour.cluster, &self.tour.repo, values)?;
                    } else {
                        self.say(
                            transcript,
                            &format!("\n{at}: $ {command}\n  (on the stand-in: installed before the first command, as the e2e suite installs it: the rendered chart without its Deployment, `annexa run` as a local process)\n"),
                        );
                    }
                    transcript
                        .ran
                        .push((at.clone(), "admin".into(), command.clone()));
                }
                Step::Run {
                    at,
                    user,
                    command,
                    expect,
                } => {
                    self.say(transcript, &format!("\n{at}: [as {user}] $ {command}\n"));
                    let (code, output) = self.shell(user, command)?;
                    self.say(transcript, &output);
                    transcript
                        .ran
                        .push((at.clone(), user.clone(), command.clone()));
                    if code != Some(*expect) {
                        return Err(HarnessError::Other(format!(
                            "{at}: `{command}` as {user} exited with {code:?}, the docs expect {expect}:\n{output}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs one command with bash (pipefail) as `user`; returns its exit code and output.
    fn shell(&self, user: &str, command: &str) -> Result<(Option<i32>, String), HarnessError> {
        let kubeconfig = self.tour.cluster.kubeconfig_for(user)?;
        let path = format!(
            "{}:{}",
            self.tour.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output_file = self.workdir.join(".docs-test-output");
        let out = std::fs::File::create(&output_file).map_err(|source| HarnessError::Io {
            what: "creating the command's output file".into(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| HarnessError::Io {
            what: "creating the command's output file".into(),
            source,
        })?;
        let mut child = Command::new("bash")
            .args(["-o", "pipefail", "-c", command])
            .current_dir(&self.workdir)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| HarnessError::Io {
                what: "starting bash".into(),
                source,
            })?;
        let start = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().map_err(|source| HarnessError::Io {
                what: "waiting for bash".into(),
                source,
            })? {
                break status.code();
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = std::fs::read_to_string(&output_file).unwrap_or_default();
        Ok((code, output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# Title

```sh
cargo run --release -- check examples/   # exit 1: findings
```

## Walkthrough

```sh
# as admin (a cluster administrator)
helm install annexa charts/annexa --namespace annexa-system --set a.b=Ignore
kubectl apply -f x.yaml \
  -f y.yaml
# as bob@example.com (reviewer)
annexa approve md/m -n ns   # shows the release
kubectl -n annexa-system rollout status deployment/annexa
echo '# not a comment' "a # b"
```

```yaml
a: 1
```

<!-- docs-test: skip needs a real GPU node -->
```sh
kubectl label node n1 gpu=yes
```

1. Step:

   ```sh
   kubectl delete validatingwebhookconfiguration annexa
   ```
"#;

    #[test]
    fn blocks_users_exit_codes_and_skips() {
        let blocks = sh_blocks(DOC, "DOC.md");
        assert_eq!(blocks.len(), 4, "{blocks:?}");
        assert_eq!(blocks[1].section, "Walkthrough");
        let first = steps(&blocks[0]).unwrap();
        assert_eq!(
            first,
            vec![Step::Run {
                at: "DOC.md:4".into(),
                user: "admin".into(),
                command: "annexa check examples/".into(),
                expect: 1
            }]
        );
        let second = steps(&blocks[1]).unwrap();
        assert!(matches!(&second[0], Step::Chart { values, .. } if values.len() == 1));
        assert!(matches!(&second[1], Step::Run { user, command, .. }
            if user == "admin" && command == "kubectl apply -f x.yaml  -f y.yaml"));
        assert!(
            matches!(&second[2], Step::Run { user, command, expect: 0, .. }
            if user == "bob@example.com" && command == "annexa approve md/m -n ns")
        );
        assert!(matches!(&second[3], Step::Skip { .. }));
        assert!(matches!(&second[4], Step::Run { command, .. }
            if command == r#"echo '# not a comment' "a # b""#));
        assert!(
            matches!(&steps(&blocks[2]).unwrap()[0], Step::Skip { reason, .. }
            if reason == "needs a real GPU node")
        );
        assert!(
            matches!(&steps(&blocks[3]).unwrap()[0], Step::Run { command, .. }
            if command == "kubectl delete validatingwebhookconfiguration annexa")
        );
    }
}
