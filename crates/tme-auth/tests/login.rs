//! Logins against a real store in a temporary directory: the password, app passwords,
//! unknown addresses, suspended accounts, and locks an operator can see and lift.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use tme_auth::{Authenticator, Credential, CredentialWatch, LoginRefusal, Metrics};
use tme_core::Secret;
use tme_core::config::LoginConfig;
use tme_core::password::hash_password;
use tme_store::fixture;
use tme_store::{AccountState, Store};

async fn store_with_account() -> (tempfile::TempDir, Store, i64) {
    let directory = tempfile::tempdir().unwrap();
    let (store, account) = fixture::store_with_account(
        directory.path(),
        "alice@example.org",
        "right password",
        1 << 30,
    )
    .await
    .unwrap();
    store
        .directory
        .app_password_add(
            account.id,
            "phone",
            &hash_password("app-pass-word").unwrap(),
        )
        .await
        .unwrap();
    (directory, store, account.id)
}

fn secret(text: &str) -> Secret<String> {
    Secret::new(text.to_owned())
}

fn authenticator(store: &Store) -> Authenticator {
    Authenticator::new(
        store.directory.clone(),
        config(),
        Arc::new(Metrics::default()),
    )
}

fn config() -> LoginConfig {
    LoginConfig {
        failures_before_delay: 1,
        delay_ms_per_failure: 10,
        delay_ms_max: 20,
        failures_per_account_max: 3,
        failures_per_ip_max: 5,
        failure_window_seconds: 600,
        lock_seconds: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_app_password_unknown_and_suspended() {
    let (_directory, store, account_id) = store_with_account().await;
    let authenticator = authenticator(&store);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let login = authenticator
        .login(ip, "Alice@Example.org", &secret("right password"))
        .await
        .unwrap();
    assert_eq!(login.account.id, account_id);
    assert!(matches!(login.credential, Credential::Password { .. }));
    let app_login = authenticator
        .login(ip, "alice@example.org", &secret("app-pass-word"))
        .await
        .unwrap();
    assert!(matches!(
        app_login.credential,
        Credential::AppPassword { .. }
    ));
    assert_eq!(
        authenticator
            .login(ip, "alice@example.org", &secret("wrong"))
            .await,
        Err(LoginRefusal::BadCredentials)
    );
    assert_eq!(
        authenticator
            .login(ip, "nobody@example.org", &secret("right password"))
            .await,
        Err(LoginRefusal::BadCredentials)
    );
    assert_eq!(
        authenticator
            .login(ip, "not an address", &secret("x"))
            .await,
        Err(LoginRefusal::BadCredentials)
    );
    store
        .directory
        .account_set_state(account_id, AccountState::Suspended)
        .await
        .unwrap();
    assert_eq!(
        authenticator
            .login(ip, "alice@example.org", &secret("right password"))
            .await,
        Err(LoginRefusal::AccountSuspended)
    );
    // A wrong password never learns that the account is suspended.
    assert_eq!(
        authenticator
            .login(ip, "alice@example.org", &secret("wrong"))
            .await,
        Err(LoginRefusal::BadCredentials)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_and_an_operator_lifts_the_lock() {
    let (_directory, store, _) = store_with_account().await;
    let metrics = Arc::new(Metrics::default());
    let authenticator = Authenticator::new(store.directory.clone(), config(), metrics.clone());
    let ip: IpAddr = "192.0.2.8".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(
            authenticator
                .login(ip, "alice@example.org", &secret("guess"))
                .await,
            Err(LoginRefusal::BadCredentials)
        );
    }
    // Locked now: even the right password is refused, without being checked.
    let refused = authenticator
        .login(ip, "alice@example.org", &secret("right password"))
        .await;
    assert!(
        matches!(refused, Err(LoginRefusal::Locked { .. })),
        "{refused:?}"
    );
    let locks = authenticator.locks().await.unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].key, "account:alice@example.org");
    assert_eq!(locks[0].failures, 3);
    assert_eq!(metrics.locks_active.get(), 1);
    // Another client address is locked out of that account too (the lock is the account's).
    let other: IpAddr = "192.0.2.9".parse().unwrap();
    assert!(matches!(
        authenticator
            .login(other, "alice@example.org", &secret("right password"))
            .await,
        Err(LoginRefusal::Locked { .. })
    ));
    // The operator lifts it (what `tme login unlock` does).
    assert!(
        store
            .directory
            .login_lock_remove("account:alice@example.org")
            .await
            .unwrap()
    );
    assert!(
        authenticator
            .login(ip, "alice@example.org", &secret("right password"))
            .await
            .is_ok()
    );
    // Failures from one address over many accounts lock the address.
    for number in 0..5 {
        let _ = authenticator
            .login(ip, &format!("user{number}@example.org"), &secret("guess"))
            .await;
    }
    assert!(matches!(
        authenticator
            .login(ip, "alice@example.org", &secret("right password"))
            .await,
        Err(LoginRefusal::Locked { .. })
    ));
    let keys: Vec<String> = authenticator
        .locks()
        .await
        .unwrap()
        .into_iter()
        .map(|lock| lock.key)
        .collect();
    assert_eq!(keys, vec!["ip:192.0.2.8".to_owned()]);
    store.close().await;
}

/// A session's credential stands until it is taken away: the app password revoked, the
/// password changed, the account suspended; each only for the credential it concerns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_fall_when_revoked_changed_or_suspended() {
    let (_directory, store, account_id) = store_with_account().await;
    let authenticator = authenticator(&store);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let by_password = authenticator
        .login(ip, "alice@example.org", &secret("right password"))
        .await
        .unwrap();
    let by_app_password = authenticator
        .login(ip, "alice@example.org", &secret("app-pass-word"))
        .await
        .unwrap();
    let stands = |credential: Credential| {
        let authenticator = &authenticator;
        async move {
            authenticator
                .credential_stands(account_id, &credential)
                .await
                .unwrap()
        }
    };
    assert!(stands(by_password.credential.clone()).await);
    assert!(stands(by_app_password.credential.clone()).await);

    // Just checked at login: a watch does not read the directory again at once.
    let mut watch = CredentialWatch::new(&by_app_password);
    let Credential::AppPassword { id } = by_app_password.credential else {
        panic!("an app password login");
    };
    store
        .directory
        .app_password_remove(account_id, id)
        .await
        .unwrap();
    assert!(
        watch.still_valid(&authenticator).await,
        "within the recheck"
    );
    assert!(!stands(by_app_password.credential.clone()).await);
    assert!(
        stands(by_password.credential.clone()).await,
        "the password stands"
    );

    store
        .directory
        .account_set_password_hash(account_id, &hash_password("new password").unwrap())
        .await
        .unwrap();
    assert!(!stands(by_password.credential.clone()).await);
    let again = authenticator
        .login(ip, "alice@example.org", &secret("new password"))
        .await
        .unwrap();
    assert!(stands(again.credential.clone()).await);
    store
        .directory
        .account_set_state(account_id, AccountState::Suspended)
        .await
        .unwrap();
    assert!(!stands(again.credential.clone()).await, "suspended");
    store.close().await;
}
