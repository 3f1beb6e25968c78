//! Connection limits: at most `connections_max` connections at once on a server, and at most
//! `connections_per_ip_max` from one client address. A connection holds its `Admission`
//! until it ends; dropping it gives both slots back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one server (shared by its listeners).
#[derive(Debug)]
pub struct ConnectionLimits {
    connections: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    connections_per_ip_max: usize,
}

/// One admitted connection's slots.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client_ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(connections_max: usize, connections_per_ip_max: usize) -> ConnectionLimits {
        ConnectionLimits {
            connections: Arc::new(Semaphore::new(connections_max)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            connections_per_ip_max,
        }
    }

    /// Admits a connection from `client_ip`, or None when either limit is reached.
    pub fn admit(&self, client_ip: IpAddr) -> Option<Admission> {
        let permit = self.connections.clone().try_acquire_owned().ok()?;
        let mut per_ip = self
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = per_ip.entry(client_ip).or_insert(0);
        if *count >= self.connections_per_ip_max {
            if *count == 0 {
                per_ip.remove(&client_ip);
            }
            return None;
        }
        *count += 1;
        Some(Admission {
            _permit: permit,
            per_ip: self.per_ip.clone(),
            client_ip,
        })
    }

    /// Connections admitted and not yet ended.
    pub fn connections_open(&self) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .sum()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = per_ip.get_mut(&self.client_ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.client_ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn per_address_and_total_limits_hold_and_slots_come_back() {
        let limits = ConnectionLimits::new(3, 2);
        let first = limits.admit(ip("127.0.0.1"));
        let second = limits.admit(ip("127.0.0.1"));
        assert!(first.is_some() && second.is_some());
        assert!(limits.admit(ip("127.0.0.1")).is_none(), "per address");
        let third = limits.admit(ip("127.0.0.2"));
        assert!(third.is_some());
        assert!(limits.admit(ip("127.0.0.3")).is_none(), "in all");
        assert_eq!(limits.connections_open(), 3);
        drop(first);
        assert!(limits.admit(ip("127.0.0.1")).is_some(), "a slot came back");
        drop((second, third));
        assert_eq!(limits.connections_open(), 0);
    }

    #[test]
    fn a_zero_per_address_limit_admits_nobody_and_keeps_no_entry() {
        let limits = ConnectionLimits::new(3, 0);
        assert!(limits.admit(ip("::1")).is_none());
        assert_eq!(limits.connections_open(), 0);
    }
}
