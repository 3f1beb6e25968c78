//! Each role's health, as `/healthz` and `/readyz` report it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleState {
    Starting,
    Running,
    /// Failed, waiting to be restarted.
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleHealth {
    pub state: RoleState,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub since_unix: i64,
}

#[derive(Debug, Default)]
pub struct Health {
    roles: Mutex<BTreeMap<&'static str, RoleHealth>>,
}

impl Health {
    pub fn set(&self, role: &'static str, state: RoleState, error: Option<String>) {
        let mut roles = self
            .roles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = roles.entry(role).or_insert(RoleHealth {
            state,
            restarts: 0,
            last_error: None,
            since_unix: crate::commands::now_unix(),
        });
        if entry.state != state {
            entry.since_unix = crate::commands::now_unix();
        }
        if state == RoleState::Restarting {
            entry.restarts += 1;
        }
        entry.state = state;
        if error.is_some() {
            entry.last_error = error;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, RoleHealth> {
        self.roles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Ready when every role is running.
    pub fn ready(&self) -> bool {
        let roles = self.snapshot();
        !roles.is_empty() && roles.values().all(|role| role.state == RoleState::Running)
    }
}
