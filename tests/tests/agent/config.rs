//! Bad agent configuration is a usage error (exit 2) that names the file,
//! the line and the key, before any model request.

use bulkhead_tests::agent_chat::ChatSetup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_config_names_file_line_and_key() {
    let setup = ChatSetup::new(
        "http://127.0.0.1:9/v1",
        "openai",
        8000,
        "model = \"ghost\"\n",
    );
    let out = setup.chat(&["hello"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bulkhead.toml"), "{stderr}");
    assert!(stderr.contains("line 14, column 9"), "{stderr}");
    assert!(
        stderr.contains("model = \"ghost\" is not a [models.NAME] table"),
        "{stderr}"
    );

    let none = ChatSetup::new("http://127.0.0.1:9/v1", "openai", 8000, "");
    std::fs::write(&none.config, "").unwrap();
    let out = none.chat(&["hello"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no model: pass --provider"), "{stderr}");
}
