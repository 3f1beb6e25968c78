//! Outgoing DKIM signatures verify with another implementation (dkimpy) against the keys
//! tme's own `dns` role publishes: the domain's RSA and Ed25519 keys, made when the domain
//! was added, sign; the DNS answers what verifiers will find.

use std::path::Path;

use tme_core::Domain;
use tme_core::config::StoreConfig;
use tme_store::Store;
use tme_testkit::Node;

const TME: &str = env!("CARGO_BIN_EXE_tme");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_made_with_the_domains_keys_verify_against_tmes_own_dns() {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.add_account("sender@signing.test", "password")
        .expect("account");
    node.serve().expect("serve");
    let store = Store::open(node.data_dir(), &StoreConfig::default())
        .await
        .expect("open store");
    let domain = Domain::parse("signing.test").expect("domain");
    let keys = store
        .directory
        .dkim_key_list(Some(&domain))
        .await
        .expect("keys");
    store.close().await;
    assert_eq!(keys.len(), 2, "an RSA and an Ed25519 key: {keys:?}");
    let message = b"From: Sender <sender@signing.test>\r\nTo: someone@example.org\r\n\
Subject: signed\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <signed-1@signing.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA signed body.\r\n\
With  two   spaces and a trailing one \r\n";
    let mut signed = tme_queue::sign::signature_fields(message, &keys).expect("sign");
    signed.extend_from_slice(message);
    let results = tme_testkit::dkim::verify_with_dns(&signed, node.address("dns")).expect("dkimpy");
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|(_, passed)| *passed), "{results:?}");
    assert!(
        results
            .iter()
            .any(|(selector, _)| selector.starts_with("rsa-"))
    );
    assert!(
        results
            .iter()
            .any(|(selector, _)| selector.starts_with("ed25519-"))
    );

    // A changed body fails: the verifier really checks.
    let mut tampered = signed.clone();
    let at = tampered.len() - 4;
    tampered[at] = b'X';
    let results =
        tme_testkit::dkim::verify_with_dns(&tampered, node.address("dns")).expect("dkimpy");
    assert!(results.iter().all(|(_, passed)| !*passed), "{results:?}");
    node.stop().expect("stop");
}
