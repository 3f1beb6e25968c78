//! The command line as operators use it: init, config, the directory commands, errors.

use tme_testkit::Node;

const TME: &str = env!("CARGO_BIN_EXE_tme");

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn init_writes_the_contract_listeners_and_refuses_to_overwrite() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data_dir = directory.path().join("data");
    let output = std::process::Command::new(TME)
        .args(["init", "--data-dir"])
        .arg(&data_dir)
        .args(["--hostname", "mail.example.com"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let config = std::fs::read_to_string(data_dir.join("tme.toml")).expect("tme.toml");
    for line in [
        "smtp = \"127.0.0.1:2525\"",
        "submission = \"127.0.0.1:2587\"",
        "submissions = \"127.0.0.1:2465\"",
        "imap = \"127.0.0.1:2143\"",
        "imaps = \"127.0.0.1:2993\"",
        "pop3 = \"127.0.0.1:2110\"",
        "pop3s = \"127.0.0.1:2995\"",
        "http = \"127.0.0.1:8080\"",
        "https = \"127.0.0.1:8443\"",
        "dns = \"127.0.0.1:5353\"",
        "hostname = \"mail.example.com\"",
    ] {
        assert!(config.contains(line), "tme.toml has {line}:\n{config}");
    }
    assert!(data_dir.join("tls/certificate.pem").is_file());
    assert!(
        data_dir.join("directory.sqlite").is_file(),
        "the embedded store is created"
    );
    let again = std::process::Command::new(TME)
        .args(["init", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a tme data directory"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn config_show_applies_environment_overrides_and_names_bad_keys() {
    let node = Node::init(std::path::Path::new(TME)).expect("init");
    let shown = node.tme_ok(&["config", "show"]).expect("config show");
    assert!(
        shown.contains(&format!("smtp = \"{}\"", node.address("smtp"))),
        "{shown}"
    );

    let output = node
        .command()
        .args(["config", "show"])
        .env("TME_STORE__RETENTION_DAYS", "zero")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("TME_STORE__RETENTION_DAYS"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");

    let path = node.data_dir().join("tme.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("{text}\n[store]\nretention = 5\n")).expect("write");
    let output = node.tme(&["config", "show"]).expect("run");
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(message.contains("tme.toml"), "names the file: {message}");
}

#[test]
fn a_missing_data_directory_says_how_to_create_one() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(TME)
        .arg("--data-dir")
        .arg(directory.path().join("nowhere"))
        .args(["account", "list"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("tme init --data-dir"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn directory_commands_add_list_show_set_remove() {
    let node = Node::init(std::path::Path::new(TME)).expect("init");
    node.tme_ok(&[
        "partner",
        "add",
        "Acme Hosting",
        "--product-name",
        "Acme Mail",
        "--colour-primary",
        "#123456",
    ])
    .expect("partner");
    node.tme_ok(&[
        "domain",
        "add",
        "Bücher.Example",
        "--partner",
        "Acme Hosting",
    ])
    .expect("domain");
    let output = node
        .tme_with_stdin(
            &[
                "account",
                "add",
                "Alice@bücher.example",
                "--password-stdin",
                "--quota",
                "50M",
            ],
            "s3cret pass\n",
        )
        .expect("account add");
    assert!(output.status.success(), "{}", stderr(&output));
    node.tme_ok(&[
        "alias",
        "add",
        "team@xn--bcher-kva.example",
        "alice@bücher.example",
        "someone@elsewhere.example",
    ])
    .expect("alias");
    node.tme_ok(&["alias", "add", "@bücher.example", "alice@bücher.example"])
        .expect("catch-all");

    let accounts: serde_json::Value =
        serde_json::from_str(&node.tme_ok(&["account", "list", "--json"]).expect("list"))
            .expect("json");
    assert_eq!(accounts[0]["address"], "Alice@xn--bcher-kva.example");
    assert_eq!(accounts[0]["quota_bytes_max"], 50 * 1024 * 1024);
    assert_eq!(accounts[0]["state"], "active");
    assert!(
        accounts[0].get("password_hash").is_none(),
        "the hash is never shown"
    );

    let domain: serde_json::Value = serde_json::from_str(
        &node
            .tme_ok(&["domain", "show", "bücher.example", "--json"])
            .expect("show"),
    )
    .expect("json");
    assert_eq!(domain["domain"], "xn--bcher-kva.example");
    assert_eq!(domain["partner"], "Acme Hosting");
    assert_eq!(
        (domain["accounts"].as_u64(), domain["aliases"].as_u64()),
        (Some(1), Some(2))
    );

    node.tme_ok(&["partner", "add", "Other"]).expect("partner");
    node.tme_ok(&["domain", "set", "bücher.example", "--partner", "Other"])
        .expect("domain set");
    assert!(
        node.tme_ok(&["domain", "list", "--partner", "Other"])
            .expect("list")
            .contains("xn--bcher-kva.example")
    );
    node.tme_ok(&[
        "domain",
        "set",
        "bücher.example",
        "--partner",
        "Acme Hosting",
    ])
    .expect("domain set back");
    node.tme_ok(&["partner", "remove", "Other"])
        .expect("remove");

    let partner: serde_json::Value = serde_json::from_str(
        &node
            .tme_ok(&["partner", "show", "Acme Hosting", "--json"])
            .expect("show"),
    )
    .expect("json");
    assert_eq!(partner["branding"]["product_name"], "Acme Mail");

    node.tme_ok(&[
        "account",
        "set",
        "alice@xn--bcher-kva.example",
        "--state",
        "send-locked",
        "--quota",
        "1G",
    ])
    .expect("set");
    let shown: serde_json::Value = serde_json::from_str(
        &node
            .tme_ok(&["account", "show", "alice@bücher.example", "--json"])
            .expect("show"),
    )
    .expect("json");
    assert_eq!(shown["state"], "send-locked");
    assert_eq!(shown["quota_bytes_max"], 1u64 << 30);

    let table = node.tme_ok(&["alias", "list"]).expect("alias list");
    assert!(
        table.contains("team@xn--bcher-kva.example") && table.contains("someone@elsewhere.example"),
        "{table}"
    );

    // Refusals say what to do, on one line, with a nonzero exit.
    let output = node
        .tme(&["domain", "remove", "bücher.example"])
        .expect("run");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("remove them first"),
        "{}",
        stderr(&output)
    );
    let output = node
        .tme(&["account", "add", "bad address", "--password-stdin"])
        .expect("run");
    assert!(
        stderr(&output).contains("not a valid address"),
        "{}",
        stderr(&output)
    );
    let output = node
        .tme(&["account", "add", "bob@bücher.example"])
        .expect("run");
    assert!(
        stderr(&output).contains("--password-stdin"),
        "{}",
        stderr(&output)
    );

    node.tme_ok(&["alias", "remove", "team@bücher.example"])
        .expect("remove alias");
    node.tme_ok(&["alias", "remove", "@bücher.example"])
        .expect("remove catch-all");
    node.tme_ok(&["account", "remove", "alice@bücher.example"])
        .expect("remove account");
    node.tme_ok(&["domain", "remove", "bücher.example"])
        .expect("remove domain");
    node.tme_ok(&["partner", "remove", "Acme Hosting"])
        .expect("remove partner");
    assert_eq!(
        node.tme_ok(&["partner", "list", "--json"])
            .expect("list")
            .trim(),
        "[]"
    );
}

#[test]
fn app_passwords_are_shown_once_and_listed_without_secret() {
    let node = Node::init(std::path::Path::new(TME)).expect("init");
    node.add_account("user@example.com", "password one")
        .expect("account");
    let created = node
        .tme_ok(&[
            "account",
            "app-password",
            "add",
            "user@example.com",
            "phone",
        ])
        .expect("add");
    assert!(created.contains("phone"), "{created}");
    let listed = node
        .tme_ok(&[
            "account",
            "app-password",
            "list",
            "user@example.com",
            "--json",
        ])
        .expect("list");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["label"], "phone");
    assert!(listed[0].get("password_hash").is_none());
    node.tme_ok(&["account", "app-password", "remove", "user@example.com", "1"])
        .expect("remove");
}
