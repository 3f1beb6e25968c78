//! tme-testkit
