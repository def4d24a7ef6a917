//! Walking folders: what `annexa check DIR` reads, and in what order.

use super::expand_paths;
use std::path::{Path, PathBuf};

fn touch(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "").unwrap();
    path
}

fn relative(root: &Path, paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn folders_give_their_manifests_only_in_a_stable_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in [
        "z.yaml",
        "b/2.json",
        "b/1.yml",
        "a.yml",
        "notes.txt",
        "README.md",
        "b/c/deep.yaml",
        "yaml",
        "noext",
        "folder.yaml/inside.yaml",
        "B.yaml",
    ] {
        touch(root, name);
    }
    let found = expand_paths(&[root.to_path_buf()]).unwrap();
    assert_eq!(
        relative(root, &found),
        [
            "B.yaml",
            "a.yml",
            "b/1.yml",
            "b/2.json",
            "b/c/deep.yaml",
            "folder.yaml/inside.yaml",
            "z.yaml"
        ]
    );
    // A file named on the command line is read whatever its name, in the order given.
    let named = [root.join("notes.txt"), root.join("a.yml")];
    assert_eq!(expand_paths(&named).unwrap(), named);
}

#[cfg(unix)]
#[test]
fn each_folder_is_read_once_however_many_ways_lead_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    touch(&real, "md.yaml");
    touch(&real, "sub/other.yaml");
    // A loop back to the folder, a second way in, and a link to a file.
    std::os::unix::fs::symlink(&real, real.join("sub/again")).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("linked")).unwrap();
    std::os::unix::fs::symlink(real.join("md.yaml"), real.join("file-link.yaml")).unwrap();
    let found = expand_paths(&[
        dir.path().join("linked"),
        real.clone(),
        dir.path().to_path_buf(),
    ])
    .unwrap();
    assert_eq!(
        relative(dir.path(), &found),
        [
            "linked/file-link.yaml",
            "linked/md.yaml",
            "linked/sub/other.yaml"
        ]
    );
}

#[cfg(unix)]
#[test]
fn a_link_that_leads_nowhere_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "ok.yaml");
    let dangling = dir.path().join("gone.yaml");
    std::os::unix::fs::symlink(dir.path().join("missing.yaml"), &dangling).unwrap();
    let error = expand_paths(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(error.contains(&dangling.display().to_string()), "{error}");
}
