//! The torchrun-style rendezvous environment: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (the names torchrun, `swerl launch` and
//! Slurm wrappers export), plus `SWERL_COMM_TIMEOUT` (seconds) for the collectives' timeout.

use std::time::Duration;

use super::DEFAULT_TIMEOUT;

/// A missing or malformed rendezvous variable; always names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("rendezvous: environment variable {var} is not set ({why})")]
    Missing {
        var: &'static str,
        why: &'static str,
    },
    #[error("rendezvous: environment variable {var}={value:?}: {msg}")]
    Invalid {
        var: &'static str,
        value: String,
        msg: String,
    },
}

/// One process's place in a multi-process job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// How long a collective or the rendezvous waits for a peer.
    pub timeout: Duration,
}

pub const RANK: &str = "RANK";
pub const WORLD_SIZE: &str = "WORLD_SIZE";
pub const LOCAL_RANK: &str = "LOCAL_RANK";
pub const LOCAL_WORLD_SIZE: &str = "LOCAL_WORLD_SIZE";
pub const MASTER_ADDR: &str = "MASTER_ADDR";
pub const MASTER_PORT: &str = "MASTER_PORT";
pub const COMM_TIMEOUT: &str = "SWERL_COMM_TIMEOUT";

impl DistEnv {
    /// Reads the process environment; `Ok(None)` when neither `RANK` nor `WORLD_SIZE` is set
    /// (a plain single-process run).
    pub fn from_env() -> Result<Option<Self>, EnvError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`DistEnv::from_env`] over any variable lookup (tests, launchers).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, EnvError> {
        if get(RANK).is_none() && get(WORLD_SIZE).is_none() {
            return Ok(None);
        }
        let num = |var: &'static str| -> Result<Option<usize>, EnvError> {
            match get(var) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|e| EnvError::Invalid {
                        var,
                        value: v.clone(),
                        msg: format!("not a non-negative integer ({e})"),
                    }),
            }
        };
        let need = |var: &'static str| -> Result<usize, EnvError> {
            num(var)?.ok_or(EnvError::Missing {
                var,
                why: "RANK and WORLD_SIZE must be set together",
            })
        };
        let rank = need(RANK)?;
        let world_size = need(WORLD_SIZE)?;
        if world_size == 0 {
            return Err(invalid(WORLD_SIZE, "0", "must be at least 1".into()));
        }
        if rank >= world_size {
            return Err(invalid(
                RANK,
                &rank.to_string(),
                format!("must be below WORLD_SIZE={world_size}"),
            ));
        }
        // Single-node defaults, as torchrun's: every rank is local.
        let local_world_size = num(LOCAL_WORLD_SIZE)?.unwrap_or(world_size);
        let local_rank = num(LOCAL_RANK)?.unwrap_or(rank % local_world_size.max(1));
        if local_world_size == 0 || local_world_size > world_size {
            return Err(invalid(
                LOCAL_WORLD_SIZE,
                &local_world_size.to_string(),
                format!("must be in 1..={world_size} (WORLD_SIZE)"),
            ));
        }
        if local_rank >= local_world_size {
            return Err(invalid(
                LOCAL_RANK,
                &local_rank.to_string(),
                format!("must be below LOCAL_WORLD_SIZE={local_world_size}"),
            ));
        }
        let master_addr = match get(MASTER_ADDR) {
            Some(a) if !a.trim().is_empty() => a.trim().to_string(),
            Some(a) => return Err(invalid(MASTER_ADDR, &a, "is empty".into())),
            None if world_size == 1 => "127.0.0.1".into(),
            None => {
                return Err(EnvError::Missing {
                    var: MASTER_ADDR,
                    why: "the host of rank 0, needed when WORLD_SIZE > 1",
                })
            }
        };
        let master_port =
            match get(MASTER_PORT) {
                Some(p) => p
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| invalid(MASTER_PORT, &p, "not a port in 1..=65535".into()))?,
                None if world_size == 1 => 29500,
                None => return Err(EnvError::Missing {
                    var: MASTER_PORT,
                    why: "the TCP port rank 0 serves the rendezvous on, needed when WORLD_SIZE > 1",
                }),
            };
        let timeout = match get(COMM_TIMEOUT) {
            None => DEFAULT_TIMEOUT,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    invalid(COMM_TIMEOUT, &v, "not a positive number of seconds".into())
                })?,
        };
        Ok(Some(DistEnv {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
            timeout,
        }))
    }

    /// `MASTER_ADDR:MASTER_PORT`, bracketing an IPv6 literal.
    pub fn master(&self) -> String {
        if self.master_addr.contains(':') && !self.master_addr.starts_with('[') {
            format!("[{}]:{}", self.master_addr, self.master_port)
        } else {
            format!("{}:{}", self.master_addr, self.master_port)
        }
    }
}

fn invalid(var: &'static str, value: &str, msg: String) -> EnvError {
    EnvError::Invalid {
        var,
        value: value.to_string(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<DistEnv>, EnvError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DistEnv::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn absent_means_single_process() {
        assert_eq!(parse(&[]).unwrap(), None);
    }

    #[test]
    fn full_torchrun_env() {
        let e = parse(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29501"),
            ("SWERL_COMM_TIMEOUT", "2.5"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world_size, e.local_rank, e.local_world_size),
            (5, 8, 1, 4)
        );
        assert_eq!(e.master(), "node0:29501");
        assert_eq!(e.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn errors_name_the_variable() {
        let msg = |v: &[(&str, &str)]| parse(v).unwrap_err().to_string();
        assert!(msg(&[("RANK", "0")]).contains("WORLD_SIZE is not set"));
        assert!(msg(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK=\"x\""));
        assert!(msg(&[("RANK", "2"), ("WORLD_SIZE", "2")]).contains("below WORLD_SIZE=2"));
        assert!(msg(&[("RANK", "0"), ("WORLD_SIZE", "2")]).contains("MASTER_ADDR is not set"));
        let m = msg(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "70000"),
        ]);
        assert!(m.contains("MASTER_PORT=\"70000\""), "{m}");
        let m = msg(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "3"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
        ]);
        assert!(m.contains("LOCAL_RANK"), "{m}");
    }
}
