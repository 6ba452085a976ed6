//! What a command checks about its files before any work: every input is there and of the kind
//! it is read as, every output can be written where it is asked for, and no output is an input
//! or another output — by canonical path, device and inode, so that a symbolic link, a hard
//! link or a `..` cannot make `--out` replace the model it reads.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// How an input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A model: a GGUF file or a Hugging Face folder, read at offsets (memory-mapped), so its
    /// files must be regular files.
    Model,
    /// A file read at offsets (an imatrix file): a regular file.
    File,
    /// A file read once from start to end (a text, a plan, an imatrix): a regular file, or a
    /// pipe or FIFO.
    Once,
}

/// The files of one command: its inputs and its outputs, each with the flag that named it.
#[derive(Debug, Default)]
pub struct Files {
    inputs: Vec<(String, PathBuf, Input)>,
    outputs: Vec<(String, PathBuf)>,
}

impl Files {
    pub fn new() -> Files {
        Files::default()
    }

    /// An input named by `flag`.
    pub fn input(mut self, flag: &str, path: &Path, how: Input) -> Files {
        self.inputs.push((flag.to_string(), path.to_path_buf(), how));
        self
    }

    /// An input named by `flag`, when given.
    pub fn input_opt(self, flag: &str, path: Option<&Path>, how: Input) -> Files {
        match path {
            Some(p) => self.input(flag, p, how),
            None => self,
        }
    }

    /// A file the command writes (named by `flag`, or written beside the file it names).
    pub fn output(mut self, flag: &str, path: &Path) -> Files {
        self.outputs.push((flag.to_string(), path.to_path_buf()));
        self
    }

    /// An output named by `flag`, when given.
    pub fn output_opt(self, flag: &str, path: Option<&Path>) -> Files {
        match path {
            Some(p) => self.output(flag, p),
            None => self,
        }
    }

    /// Checks every input and output (see the module's documentation); the first problem is
    /// the error, in one line naming the flag and the file.
    pub fn check(&self) -> Result<()> {
        let mut taken: Vec<(String, Identity)> = Vec::new();
        for (flag, path, how) in &self.inputs {
            for id in check_input(flag, path, *how)? {
                taken.push((format!("{flag} {}", path.display()), id));
            }
        }
        let mut written: Vec<(String, PathBuf)> = Vec::new();
        for (flag, path) in &self.outputs {
            let place = check_output(flag, path)?;
            let named = format!("{flag} {}", path.display());
            if let Some(id) = identity(path) {
                if let Some((what, _)) = taken.iter().find(|(_, t)| *t == id) {
                    bail!("{named} is {what}: an output never replaces an input");
                }
            }
            if let Some((what, _)) = written.iter().find(|(_, p)| *p == place) {
                bail!("{named} is also {what}: two outputs of one run cannot share a file");
            }
            written.push((named, place));
        }
        Ok(())
    }
}

/// A file's device and inode (after following links).
type Identity = (u64, u64);

fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Checks one input; returns the identities of the files it reads (a folder's files too).
fn check_input(flag: &str, path: &Path, how: Input) -> Result<Vec<Identity>> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let kind = meta.file_type();
    let mut ids = vec![(meta.dev(), meta.ino())];
    match how {
        Input::Model if kind.is_dir() => {
            // A Hugging Face folder: its weights and descriptions are read at offsets.
            let entries = std::fs::read_dir(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for e in entries.flatten() {
                let p = e.path();
                let Ok(m) = std::fs::metadata(&p) else { continue };
                let read =
                    p.extension().is_some_and(|x| x == "safetensors" || x == "json" || x == "model" || x == "jinja");
                if read && !m.is_file() {
                    bail!(
                        "{flag} {}: {} is {}, not a regular file; a model's files are read at offsets",
                        path.display(),
                        p.display(),
                        crate::calib::file_kind(m.file_type())
                    );
                }
                ids.push((m.dev(), m.ino()));
            }
        }
        Input::Model if !kind.is_file() => {
            bail!(
                "{flag} {}: {}, not a GGUF file or a Hugging Face folder; a model is read at offsets",
                path.display(),
                crate::calib::file_kind(kind)
            )
        }
        Input::File if !kind.is_file() => bail!(
            "{flag} {}: {}, not a regular file; it is read at offsets",
            path.display(),
            crate::calib::file_kind(kind)
        ),
        Input::Once if !(kind.is_file() || kind.is_fifo()) => {
            bail!("{flag} {}: {}, not a regular file or a pipe", path.display(), crate::calib::file_kind(kind))
        }
        _ => {}
    }
    Ok(ids)
}

/// Checks that `path` can be written (its folder exists and takes a new file, and it is not a
/// folder where a file is meant, nor the reverse); returns where it will be, canonically: an
/// existing path with every link resolved, a new one as its folder's canonical path and its name.
fn check_output(flag: &str, path: &Path) -> Result<PathBuf> {
    let Some(name) = path.file_name() else { bail!("{flag} {}: not a file name", path.display()) };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = std::fs::canonicalize(parent).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("{flag} {}: the folder {} does not exist", path.display(), parent.display())
        }
        _ => anyhow::anyhow!("{flag} {}: its folder {}: {e}", path.display(), parent.display()),
    })?;
    if !folder.is_dir() {
        bail!("{flag} {}: {} is not a folder", path.display(), parent.display());
    }
    if let Ok(m) = std::fs::metadata(path) {
        if !(m.is_file() || m.is_dir()) {
            bail!("{flag} {}: {}, which is not written over", path.display(), crate::calib::file_kind(m.file_type()));
        }
    }
    crate::temp::check_writable(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot write there: {e}", path.display()))?;
    Ok(std::fs::canonicalize(path).unwrap_or_else(|_| folder.join(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("triage-guard-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        d
    }

    /// Every alias of an input — the path itself, `..`, a symbolic link, a hard link, a file
    /// inside an input folder — is refused as an output, and so is one output named twice.
    #[test]
    fn outputs_that_alias_inputs_or_each_other_are_refused() {
        let d = scratch("alias");
        let model = d.join("m.gguf");
        std::fs::write(&model, b"GGUF").unwrap();
        let folder = d.join("hf");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("model.safetensors"), b"x").unwrap();
        std::os::unix::fs::symlink(&model, d.join("link.gguf")).unwrap();
        std::fs::hard_link(&model, d.join("hard.gguf")).unwrap();
        let files = |out: &Path| Files::new().input("--model", &model, Input::Model).output("--out", out);
        for alias in [model.clone(), d.join("sub/../m.gguf"), d.join("link.gguf"), d.join("hard.gguf")] {
            let e = files(&alias).check().unwrap_err().to_string();
            assert!(e.contains("never replaces an input"), "{}: {e}", alias.display());
        }
        let e = Files::new()
            .input("--model", &folder, Input::Model)
            .output("--out", &folder.join("model.safetensors"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("never replaces an input"), "{e}");
        let e =
            files(&d.join("new.gguf")).output("--report", &d.join("sub/../new.gguf")).check().unwrap_err().to_string();
        assert!(e.contains("two outputs"), "{e}");
        // One folder named directly and through a link to it (found by the output-aliases fuzz family).
        std::os::unix::fs::symlink(&d, d.join("sub/up")).unwrap();
        let e = Files::new().output("--out", &d).output("--report", &d.join("sub/up")).check().unwrap_err().to_string();
        assert!(e.contains("two outputs"), "{e}");
        files(&d.join("new.gguf")).output("--report", &d.join("r.json")).check().unwrap();
        assert!(!d.join("new.gguf").exists() && !d.join("r.json").exists());
    }

    #[test]
    fn outputs_in_missing_folders_and_inputs_of_the_wrong_kind_are_refused() {
        let d = scratch("kinds");
        let e = Files::new().output("--report", &d.join("nodir/r.json")).check().unwrap_err().to_string();
        assert!(e.starts_with("--report ") && e.contains("nodir"), "{e}");
        let e = Files::new().input("--text", Path::new("/dev/zero"), Input::Once).check().unwrap_err().to_string();
        assert!(e.contains("a device"), "{e}");
        let e = Files::new().input("--model", &d, Input::Once).check().unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        Files::new().input("--text", &fifo, Input::Once).check().unwrap();
        let e = Files::new().input("--model", &fifo, Input::Model).check().unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = Files::new().output("--out", &fifo).check().unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
    }
}
