//! Creating a key: its value is shown once — on stdout, alone with `--quiet` — or written to a
//! `--save-to` file created with mode 0600, never overwriting one that exists.

use crate::commands::Ctx;
use crate::connection::Call;
use crate::error::CliError;
use crate::output;
use crate::views::Col;
use clap::Args;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct RevealArgs {
    /// Print only the key's value, for `KEY=$(keyplane … --quiet)`.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write the key's value to FILE (created with mode 0600; an existing file is never
    /// overwritten) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub save_to: Option<PathBuf>,
}

/// A file made for one key value before the key exists, so an unusable path fails first.
struct KeyFile {
    path: PathBuf,
    file: File,
}

impl KeyFile {
    fn create(path: &Path) -> Result<Self, CliError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(file) => Ok(Self {
                path: path.to_owned(),
                file,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(CliError::usage(format!(
                    "refusing to overwrite {}: it already exists",
                    path.display()
                ))
                .hint("--save-to only creates new files; pick another name or remove the old file"))
            }
            Err(e) => Err(CliError::other(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    fn write(mut self, value: &str) -> std::io::Result<()> {
        self.file.write_all(value.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.sync_all()
    }

    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes the value at `pointer` (`/value`, `/api_key/value`) from the created object.
fn strip(created: &mut Value, pointer: &str) {
    let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(obj) = created.pointer_mut(parent).and_then(Value::as_object_mut) {
        obj.remove(field);
    }
}

/// Sends a create call whose answer holds a key value at `pointer`, and shows it once.
pub async fn create(
    ctx: &Ctx,
    call: &Call,
    reveal: &RevealArgs,
    cols: &[Col],
    pointer: &str,
) -> Result<(), CliError> {
    let conn = ctx.conn()?;
    let file = reveal.save_to.as_deref().map(KeyFile::create).transpose()?;
    let mut created = match conn.send(call).await {
        Ok(created) => created,
        Err(e) => {
            if let Some(f) = file {
                f.discard();
            }
            return Err(e);
        }
    };
    let value = created
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(file) = file else {
        return output::created_key(ctx.format, &created, cols, value.as_deref(), reveal.quiet);
    };
    let Some(v) = value else {
        file.discard();
        eprintln!("keyplane: the answer holds no key value; nothing was saved");
        return output::created_key(ctx.format, &created, cols, None, reveal.quiet);
    };
    let path = file.path.clone();
    match file.write(&v) {
        Ok(()) => {
            strip(&mut created, pointer);
            eprintln!(
                "keyplane: the key's value is in {} (mode 0600); it is not shown again",
                path.display()
            );
            output::created_key(ctx.format, &created, cols, None, reveal.quiet)
        }
        Err(e) => {
            // The key exists now: losing its value would be worse than printing it.
            output::created_key(ctx.format, &created, cols, Some(&v), reveal.quiet)?;
            Err(CliError::other(format!(
                "cannot write {}: {e}; the value was printed instead",
                path.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_removes_only_the_value() {
        let mut top = json!({"id": "k", "value": "sk-x"});
        strip(&mut top, "/value");
        assert_eq!(top, json!({"id": "k"}));
        let mut nested = json!({"id": "sa", "api_key": {"id": "k", "value": "sk-x"}});
        strip(&mut nested, "/api_key/value");
        assert_eq!(nested, json!({"id": "sa", "api_key": {"id": "k"}}));
    }
}
