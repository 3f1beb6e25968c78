//! tme-message
