//! The gateway's passthrough methods: resources, prompts, logging and
//! completion, routed to the servers behind it. Tools and prompts are
//! namespaced `server__name`; resource URIs are left as the servers wrote
//! them, and a read goes to the first server that answers for the URI.
//! With `--expose SERVER`, every method goes to that one server unchanged.

use crate::session::ServerSession;
use serde_json::{Value, json};

use crate::NAMESPACE_SEPARATOR;
use crate::gateway::{Gateway, READY_TIMEOUT};

impl Gateway {
    /// The methods served by the servers, or `None` if `method` is not one.
    pub(crate) async fn route(
        &self,
        method: &str,
        params: &Value,
    ) -> Option<Result<Value, String>> {
        if let Some(server) = self.exposed() {
            if matches!(method, "initialize" | "ping") {
                return None;
            }
            return Some(ask(server, method, params).await);
        }
        Some(match method {
            "resources/list" => Ok(self.gather(method, params, "resources", false).await),
            "resources/templates/list" => Ok(self
                .gather(method, params, "resourceTemplates", false)
                .await),
            "prompts/list" => Ok(self.gather(method, params, "prompts", true).await),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.first_that_answers(method, params).await
            }
            "prompts/get" => self.by_name(method, params, "name").await,
            "completion/complete" => match params["ref"]["type"].as_str() {
                Some("ref/prompt") => {
                    let mut p = params.clone();
                    let name = p["ref"]["name"].as_str().unwrap_or_default().to_owned();
                    match self.split(&name) {
                        Some((s, bare)) => {
                            p["ref"]["name"] = json!(bare);
                            ask(s, method, &p).await
                        }
                        None => Err(format!("no server for prompt \"{name}\"")),
                    }
                }
                _ => self.first_that_answers(method, params).await,
            },
            "logging/setLevel" => {
                for s in self.ready().await {
                    let _ = s.request(method, params.clone()).await;
                }
                Ok(json!({}))
            }
            _ => return None,
        })
    }

    /// Which servers a client's request reaches: where the notifications
    /// and requests that a server sends while serving it may belong.
    pub(crate) fn target(&self, msg: &Value) -> Reach {
        let method = msg["method"].as_str().unwrap_or("");
        if let Some(i) = self.expose {
            return match method {
                "initialize" | "ping" => Reach::Gateway,
                _ => Reach::One(i),
            };
        }
        let by_name = |name: Option<&str>| {
            name.and_then(|n| n.split_once(NAMESPACE_SEPARATOR))
                .and_then(|(server, _)| self.sessions.iter().position(|s| s.name() == server))
                .map_or(Reach::Gateway, Reach::One)
        };
        match method {
            // A built-in tool, or a name no server has: the gateway
            // answers it alone.
            "tools/call" | "prompts/get" => by_name(msg["params"]["name"].as_str()),
            "completion/complete" if msg["params"]["ref"]["type"] == "ref/prompt" => {
                by_name(msg["params"]["ref"]["name"].as_str())
            }
            "completion/complete"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "prompts/list"
            | "logging/setLevel" => Reach::All,
            _ => Reach::Gateway,
        }
    }

    /// The one server `--expose` names.
    pub(crate) fn exposed(&self) -> Option<&ServerSession> {
        self.expose.and_then(|i| self.sessions.get(i))
    }

    async fn ready(&self) -> Vec<&ServerSession> {
        let mut out = Vec::new();
        for s in &self.sessions {
            if matches!(
                tokio::time::timeout(READY_TIMEOUT, s.ready()).await,
                Ok(Ok(()))
            ) {
                out.push(s);
            }
        }
        out
    }

    /// `key`'s list from every server that has one; names prefixed if
    /// `namespaced`.
    async fn gather(&self, method: &str, params: &Value, key: &str, namespaced: bool) -> Value {
        let mut items = Vec::new();
        for s in self.ready().await {
            let Ok(result) = s.request(method, params.clone()).await else {
                continue; // a server without this capability
            };
            for mut item in result[key].as_array().cloned().unwrap_or_default() {
                if namespaced && let Some(name) = item["name"].as_str() {
                    item["name"] = json!(format!("{}{NAMESPACE_SEPARATOR}{name}", s.name()));
                }
                items.push(item);
            }
        }
        json!({ key: items })
    }

    async fn first_that_answers(&self, method: &str, params: &Value) -> Result<Value, String> {
        let mut last = format!("no server answers {method}");
        for s in self.ready().await {
            match s.request(method, params.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => last = format!("{}: {e}", s.name()),
            }
        }
        Err(last)
    }

    async fn by_name(&self, method: &str, params: &Value, field: &str) -> Result<Value, String> {
        let name = params[field]
            .as_str()
            .ok_or_else(|| format!("{method}: `{field}` is missing"))?;
        let (server, bare) = self
            .split(name)
            .ok_or_else(|| format!("no server for \"{name}\""))?;
        let mut p = params.clone();
        p[field] = json!(bare);
        ask(server, method, &p).await
    }

    /// `server__name` → the server and `name`.
    pub(crate) fn split<'a>(&self, name: &'a str) -> Option<(&ServerSession, &'a str)> {
        let (server, bare) = name.split_once(NAMESPACE_SEPARATOR)?;
        self.sessions
            .iter()
            .find(|s| s.name() == server)
            .map(|s| (s, bare))
    }
}

/// The servers a client's request reaches (see [`Gateway::target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// None: the gateway answers it itself (`tools/list`, a built-in tool).
    Gateway,
    /// One server, by index.
    One(usize),
    /// Every server, or whichever answers first (`resources/read`).
    All,
}

impl Reach {
    pub(crate) fn includes(self, server: usize) -> bool {
        match self {
            Reach::Gateway => false,
            Reach::One(s) => s == server,
            Reach::All => true,
        }
    }
}

/// One request to one server, once it is ready.
pub(crate) async fn ask(
    server: &ServerSession,
    method: &str,
    params: &Value,
) -> Result<Value, String> {
    tokio::time::timeout(READY_TIMEOUT, server.ready())
        .await
        .map_err(|_| format!("server \"{}\" is not ready", server.name()))?
        .map_err(|e| format!("server \"{}\": {e}", server.name()))?;
    server
        .request(method, params.clone())
        .await
        .map_err(|e| e.to_string())
}
