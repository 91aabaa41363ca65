use super::*;

fn rule(entry: &str) -> AllowRule {
    match entry.parse() {
        Ok(rule) => rule,
        Err(e) => panic!("{entry}: {e}"),
    }
}

fn kind(entry: &str) -> AllowErrorKind {
    match entry.parse::<AllowRule>() {
        Ok(rule) => panic!("{entry} parsed as {rule}"),
        Err(e) => e.kind().clone(),
    }
}

fn target(text: &str) -> Target {
    match Target::parse(text) {
        Ok(target) => target,
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn good_entries_parse_to_their_normal_form() {
    for (entry, normal, port) in [
        ("api.github.com", "api.github.com", None),
        ("API.GitHub.COM.", "api.github.com", None),
        ("  api.github.com:443 ", "api.github.com:443", Some(443)),
        ("*.example.com", "*.example.com", None),
        ("*.Example.com.:8443", "*.example.com:8443", Some(8443)),
        ("127.0.0.1:8080", "127.0.0.1:8080", Some(8080)),
        ("[::1]:443", "[::1]:443", Some(443)),
        ("[::1]", "[::1]", None),
        ("[::ffff:10.0.0.1]", "10.0.0.1", None),
        ("localhost", "localhost", None),
        ("LOCALHOST.:8080", "localhost:8080", Some(8080)),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
        ("_srv.example.com:1", "_srv.example.com:1", Some(1)),
        ("a.b:65535", "a.b:65535", Some(65535)),
    ] {
        let rule = rule(entry);
        assert_eq!(rule.to_string(), normal, "{entry}");
        assert_eq!(rule.port(), port, "{entry}");
    }
}

#[test]
fn each_malformed_kind_is_named() {
    use AllowErrorKind as K;
    for (entry, want) in [
        ("", K::Empty),
        ("   ", K::Empty),
        (":443", K::EmptyHost),
        (".", K::EmptyHost),
        (
            "x.com:",
            K::BadPort {
                port: String::new(),
            },
        ),
        ("x.com:0", K::BadPort { port: "0".into() }),
        (
            "x.com:65536",
            K::BadPort {
                port: "65536".into(),
            },
        ),
        (
            "x.com:https",
            K::BadPort {
                port: "https".into(),
            },
        ),
        ("x.com:-1", K::BadPort { port: "-1".into() }),
        ("*", K::LoneWildcard),
        ("*:443", K::LoneWildcard),
        ("api.*.com", K::WildcardNotLeading),
        ("a*.example.com", K::WildcardNotLeading),
        ("*example.com", K::WildcardNotLeading),
        ("**.example.com", K::WildcardNotLeading),
        ("*.*.example.com", K::WildcardNotLeading),
        ("example.*", K::WildcardNotLeading),
        ("*.com", K::WildcardTooBroad { base: "com".into() }),
        ("*.1.2.3.4", K::WildcardOnAddress),
        (
            "https://x.com",
            K::SchemeGiven {
                scheme: "https".into(),
                rest: "x.com".into(),
            },
        ),
        (
            "http://x.com:80/a",
            K::SchemeGiven {
                scheme: "http".into(),
                rest: "x.com:80".into(),
            },
        ),
        ("x.com/path", K::PathGiven),
        ("x.com?q=1", K::PathGiven),
        ("x.com#top", K::PathGiven),
        ("user@x.com", K::UserInfoGiven),
        ("::1", K::UnbracketedIpv6),
        ("::1:443", K::UnbracketedIpv6),
        ("[::1", K::BadIpv6),
        ("[1.2.3.4]", K::BadIpv6),
        ("[fe80::1%eth0]", K::BadIpv6),
        ("[::1]443", K::BadIpv6),
        ("bücher.example", K::NotAscii),
        ("a b.com", K::BadChar { ch: ' ' }),
        ("a,b.com", K::BadChar { ch: ',' }),
        ("a..com", K::EmptyLabel),
        (".a.com", K::EmptyLabel),
        ("-a.com", K::HyphenAtLabelEdge),
        ("a-.com", K::HyphenAtLabelEdge),
        ("127.1", K::NumericName),
        ("0x7f000001", K::NumericName),
        (
            "0.0.0.0",
            K::UnusableAddress {
                ip: "0.0.0.0".parse().expect("ip"),
            },
        ),
        (
            "255.255.255.255:80",
            K::UnusableAddress {
                ip: "255.255.255.255".parse().expect("ip"),
            },
        ),
        (
            "224.0.0.1",
            K::UnusableAddress {
                ip: "224.0.0.1".parse().expect("ip"),
            },
        ),
        (
            "[::]",
            K::UnusableAddress {
                ip: "::".parse().expect("ip"),
            },
        ),
        (
            "[ff02::1]",
            K::UnusableAddress {
                ip: "ff02::1".parse().expect("ip"),
            },
        ),
    ] {
        assert_eq!(kind(entry), want, "{entry:?}");
    }
    let long_label = format!("{}.com", "a".repeat(64));
    assert_eq!(kind(&long_label), K::LabelTooLong);
    let long_name = format!("{}com", "abcdefghi.".repeat(26));
    assert_eq!(kind(&long_name), K::NameTooLong);
}

#[test]
fn messages_name_the_entry_and_the_fault() {
    let e = "https://api.github.com/x"
        .parse::<AllowRule>()
        .expect_err("scheme");
    assert_eq!(
        e.to_string(),
        "invalid allow-list entry `https://api.github.com/x`: a scheme (`https://`) is given; \
         write the host alone, as in `api.github.com` or `api.github.com:443`"
    );
    let e = "api.*.com".parse::<AllowRule>().expect_err("wildcard");
    assert_eq!(e.entry(), "api.*.com");
    assert!(e.to_string().contains("`*` may only open the name"), "{e}");
    let e = AllowList::parse(["ok.com", "x.com:99999"]).expect_err("port");
    assert_eq!(
        e.to_string(),
        "invalid allow-list entry `x.com:99999`: `99999` is not a port (a number from 1 to 65535)"
    );
}

#[test]
fn a_wildcard_matches_subdomains_but_not_the_apex() {
    let r = rule("*.example.com");
    assert!(r.matches(&target("api.example.com:443")));
    assert!(r.matches(&target("a.b.example.com:1")));
    assert!(r.matches(&target("API.EXAMPLE.COM.:443")));
    assert!(!r.matches(&target("example.com:443")));
    assert!(!r.matches(&target("badexample.com:443")));
    assert!(!r.matches(&target("example.com.evil.org:443")));
}

#[test]
fn names_are_case_insensitive_and_ports_optional() {
    let any = rule("Api.GitHub.com.");
    assert!(any.matches(&target("api.github.com:443")));
    assert!(any.matches(&target("API.GITHUB.COM.:22")));
    let one = rule("api.github.com:443");
    assert!(one.matches(&target("api.github.com:443")));
    assert!(!one.matches(&target("api.github.com:80")));
    assert!(!one.matches(&target("github.com:443")));
}

#[test]
fn literals_match_only_literals_and_localhost_only_its_name() {
    let list = AllowList::parse(["127.0.0.1:8080", "localhost:9000", "[::1]"]).expect("valid");
    assert_eq!(
        list.grant(&target("127.0.0.1:8080")),
        Ok(Grant::Literal("127.0.0.1".parse().expect("ip")))
    );
    assert_eq!(
        list.grant(&target("[::ffff:127.0.0.1]:8080")),
        Ok(Grant::Literal("127.0.0.1".parse().expect("ip")))
    );
    assert_eq!(list.grant(&target("localhost:9000")), Ok(Grant::Localhost));
    assert_eq!(
        list.grant(&target("[::1]:5")),
        Ok(Grant::Literal("::1".parse().expect("ip")))
    );
    assert_eq!(
        list.grant(&target("127.0.0.1:9000")),
        Err("port 9000 is not in the allow list for this host".to_owned())
    );
    assert_eq!(
        list.grant(&target("127.0.0.2:8080")),
        Err("an IP literal not in the allow list".to_owned())
    );
    assert_eq!(
        list.grant(&target("127.0.0.1:1")),
        Err("port 1 is not in the allow list for this host".to_owned())
    );
    assert_eq!(
        list.grant(&target("localhost:8080")),
        Err("port 8080 is not in the allow list for this host".to_owned())
    );
    assert_eq!(
        list.grant(&target("sub.localhost:9000")),
        Err("not in the allow list".to_owned())
    );
}

#[test]
fn the_list_names_addresses_only_through_literals_and_localhost() {
    let list = AllowList::parse(["127.0.0.1:8080", "localhost:9000", "api.test"]).expect("valid");
    let addr = |text: &str| text.parse::<SocketAddr>().expect("addr");
    assert!(list.names_address(addr("127.0.0.1:8080")));
    assert!(list.names_address(addr("[::ffff:127.0.0.1]:8080")));
    assert!(list.names_address(addr("127.0.0.1:9000")));
    assert!(list.names_address(addr("[::1]:9000")));
    assert!(!list.names_address(addr("127.0.0.2:9000")));
    assert!(!list.names_address(addr("127.0.0.1:80")));
    assert!(!list.names_address(addr("10.0.0.5:443")));
}

#[test]
fn an_empty_list_allows_nothing() {
    let list = AllowList::default();
    assert!(list.is_empty());
    assert!(!list.allows(&target("localhost:80")));
    let list: AllowList = [rule("a.test")].into_iter().collect();
    assert_eq!(list.rules().len(), 1);
    assert!(list.allows(&target("a.test:1")));
}

#[test]
fn a_url_gives_the_rule_for_its_server_and_port() {
    let rule = |u: &str| {
        AllowRule::for_url(u)
            .map(|r| r.to_string())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        rule("https://api.example.com/mcp").as_deref(),
        Ok("api.example.com:443")
    );
    assert_eq!(
        rule("http://127.0.0.1:8931/mcp?x=1").as_deref(),
        Ok("127.0.0.1:8931")
    );
    assert_eq!(rule("http://user:pw@[::1]:9/").as_deref(), Ok("[::1]:9"));
    assert_eq!(rule("HTTP://Example.COM").as_deref(), Ok("example.com:80"));
    assert!(
        rule("ftp://example.com/")
            .unwrap_err()
            .contains("not http or https")
    );
    assert!(
        rule("example.com")
            .unwrap_err()
            .contains("not an http:// or https:// URL")
    );
    assert!(rule("http:///path").is_err());
}
