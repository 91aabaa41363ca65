//! `bulkhead tools`.

use anyhow::Context;

use crate::cli::ToolsArgs;

pub async fn tools(args: ToolsArgs) -> anyhow::Result<u8> {
    let host = bulkhead_host::ToolHost::new(bulkhead_host::HostConfig::default())?;
    let catalogue = host.list_tools().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&catalogue)?);
        return Ok(0);
    }
    let list = catalogue
        .as_array()
        .context("tool catalogue is not a list")?;
    for tool in list {
        let name = tool["name"].as_str().unwrap_or("?");
        println!("{name}\n    {}", tool["description"].as_str().unwrap_or(""));
        let props = tool["schema"]["properties"].as_object();
        let required: Vec<&str> = tool["schema"]["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for (field, spec) in props.into_iter().flatten() {
            let ty = spec["type"].to_string().replace('"', "");
            let mark = if required.contains(&field.as_str()) {
                "required"
            } else {
                "optional"
            };
            let doc = spec["description"].as_str().unwrap_or("");
            println!("    {field:<18} {ty:<22} {mark:<9} {doc}");
        }
        println!();
    }
    println!("Full JSON Schemas: bulkhead tools --json");
    Ok(0)
}
