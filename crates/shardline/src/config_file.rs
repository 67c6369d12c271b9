//! `--config FILE` (or `SHARDLINE_CONFIG`): a TOML file with a `[meta]`,
//! `[data]` and `[mount]` section, one key per long flag of that command
//! (`listen = "10.0.0.5:7100"`, `heartbeat_ms = 500`, `target = ["8:…", …]`
//! for a repeatable flag, `allow_other = true` for a switch). Flags given on
//! the command line override the file. Every key, its default and meaning
//! is in `docs/config.md`, generated from the command definitions
//! (`shardline config-reference`).
//!
//! The file's settings become arguments placed right after the subcommand,
//! before the user's own, and every command lets a later flag override an
//! earlier one; a key that is no flag of the command is refused by name.

use std::ffi::OsString;

use anyhow::{bail, Context, Result};

/// Commands a config file can configure.
pub const SECTIONS: [&str; 3] = ["meta", "data", "mount"];

/// Global options that take a value, as they may precede the subcommand.
const GLOBAL_VALUED: [&str; 4] = ["--cluster", "--config", "--log-level", "--log-format"];

/// `argv` with the config file's settings for its subcommand spliced in.
pub fn apply(argv: Vec<OsString>, root: &clap::Command) -> Result<Vec<OsString>> {
    let Some((config, at, section)) = locate(&argv) else { return Ok(argv) };
    let text =
        std::fs::read_to_string(&config).with_context(|| format!("read the config file {}", config.display()))?;
    let args = section_args(&text, &section, root).with_context(|| format!("config file {}", config.display()))?;
    let mut out = argv[..=at].to_vec();
    out.extend(args.into_iter().map(OsString::from));
    out.extend_from_slice(&argv[at + 1..]);
    Ok(out)
}

/// The config file named by `--config` or `SHARDLINE_CONFIG`, the index of
/// the subcommand in `argv` and its name, when it is one a file configures.
fn locate(argv: &[OsString]) -> Option<(std::path::PathBuf, usize, String)> {
    let mut config = std::env::var_os("SHARDLINE_CONFIG").map(std::path::PathBuf::from);
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if let Some(v) = a.strip_prefix("--config=") {
            config = Some(v.into());
        } else if a == "--config" {
            config = argv.get(i + 1).map(std::path::PathBuf::from);
            i += 1;
        } else if GLOBAL_VALUED.contains(&a.as_ref()) {
            i += 1;
        } else if !a.starts_with("--") {
            let section = a.to_string();
            return SECTIONS.contains(&section.as_str()).then_some(()).and(config.map(|c| (c, i, section)));
        }
        i += 1;
    }
    None
}

/// The flags `[section]` of a config file sets, checked against the
/// subcommand's own flags.
pub fn section_args(text: &str, section: &str, root: &clap::Command) -> Result<Vec<String>> {
    let doc: toml::Table = text.parse().context("not valid TOML")?;
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            bail!("unknown section [{key}] (sections: [meta], [data], [mount])");
        }
    }
    let Some(table) = doc.get(section) else { return Ok(Vec::new()) };
    let table = table.as_table().with_context(|| format!("{section} is not a [{section}] section"))?;
    let cmd = root.find_subcommand(section).with_context(|| format!("no command {section}"))?;
    let mut args = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !a.is_hide_set())
            .with_context(|| format!("[{section}] {key}: unknown key (see docs/config.md)"))?;
        let takes_value = arg.get_action().takes_values();
        let flag = format!("--{long}");
        match value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    args.push(flag);
                }
            }
            toml::Value::Array(items) if takes_value => {
                for item in items {
                    args.push(flag.clone());
                    args.push(scalar(section, key, item)?);
                }
            }
            v if takes_value => {
                args.push(flag);
                args.push(scalar(section, key, v)?);
            }
            _ => bail!("[{section}] {key}: a switch takes true or false"),
        }
    }
    Ok(args)
}

fn scalar(section: &str, key: &str, v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("[{section}] {key}: expected a string, number or boolean"),
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn root() -> clap::Command {
        crate::Cli::command()
    }

    #[test]
    fn a_section_becomes_flags_that_the_command_line_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "[data]\nheartbeat_ms = 250\nrack = \"r1\"\ntarget = [\"8:h:1:/a\", \"9:h:2:/b\"]\n")
            .unwrap();
        let args = section_args(&std::fs::read_to_string(&cfg).unwrap(), "data", &root()).unwrap();
        assert_eq!(
            args,
            ["--heartbeat-ms", "250", "--rack", "r1", "--target", "8:h:1:/a", "--target", "9:h:2:/b"].map(String::from)
        );
        let argv: Vec<OsString> = ["shardline", "--config", cfg.to_str().unwrap(), "data", "--heartbeat-ms", "900"]
            .map(OsString::from)
            .into();
        let spliced = apply(argv, &root()).unwrap();
        let cli = crate::Cli::try_parse_from(
            spliced
                .into_iter()
                .chain(["--id", "1", "--dir", "/d", "--listen", "h:1", "--meta", "m:1"].map(OsString::from)),
        )
        .expect("parses");
        let crate::Cmd::Data(d) = cli.command else { panic!("data") };
        assert_eq!(d.heartbeat_ms, 900, "the command line wins over the file");
        assert_eq!(d.rack, "r1", "the file's value where the command line is silent");
    }

    #[test]
    fn unknown_keys_sections_and_wrong_types_are_refused_by_name() {
        let err = |text: &str| section_args(text, "meta", &root()).unwrap_err().to_string();
        assert!(err("[meta]\nlisen = \"x\"\n").contains("lisen: unknown key"));
        assert!(err("[metta]\n").contains("unknown section [metta]"));
        assert!(err("[meta]\njoin = 3\n").contains("join: a switch takes true or false"));
        assert!(err("not toml ==").contains("not valid TOML"));
        assert!(section_args("[meta]\njoin = true\n", "meta", &root()).unwrap() == ["--join"]);
    }
}
