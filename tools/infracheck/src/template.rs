//! A CloudFormation/SAM template as JSON, with the YAML short forms
//! (`!Ref X`, `!GetAtt A.B`, `!Sub "..."`, `!If [...]`) rewritten to their
//! long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, ...), so that
//! checks see one shape whichever form the template uses.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

/// The project's template, relative to the workspace root.
pub const TEMPLATE_PATH: &str = "infra/template.yaml";

#[derive(Debug, Clone)]
pub struct Template {
    pub root: Value,
}

/// One entry of `Resources`.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub logical_id: &'a str,
    pub kind: &'a str,
    pub properties: &'a Value,
}

static NO_PROPERTIES: Value = Value::Null;

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the template {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The project's template, found from a crate inside the workspace.
    pub fn load_project(manifest_dir: &str) -> Result<Self> {
        let mut dir = Path::new(manifest_dir);
        loop {
            let candidate = dir.join(TEMPLATE_PATH);
            if candidate.exists() {
                return Self::load(&candidate);
            }
            dir = dir
                .parent()
                .with_context(|| format!("no {TEMPLATE_PATH} above {manifest_dir}"))?;
        }
    }

    pub fn from_yaml(text: &str) -> Result<Self> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)?;
        let root = to_json(yaml)?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            bail!("the template has no Resources mapping");
        }
        Ok(Self { root })
    }

    pub fn resources(&self) -> impl Iterator<Item = Resource<'_>> {
        self.root["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(logical_id, body)| Resource {
                logical_id,
                kind: body["Type"].as_str().unwrap_or_default(),
                properties: body.get("Properties").unwrap_or(&NO_PROPERTIES),
            })
    }

    pub fn resource(&self, logical_id: &str) -> Option<Resource<'_>> {
        self.resources().find(|r| r.logical_id == logical_id)
    }

    pub fn resources_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = Resource<'a>> {
        self.resources().filter(move |r| r.kind == kind)
    }

    /// The one resource of `kind`; an error names how many there were.
    pub fn only_resource_of_kind<'a>(&'a self, kind: &'a str) -> Result<Resource<'a>> {
        let found: Vec<_> = self.resources_of_kind(kind).collect();
        match found.as_slice() {
            [one] => Ok(*one),
            other => bail!("expected exactly one {kind}, found {}", other.len()),
        }
    }

    /// A property of a `AWS::Serverless::Function`, falling back to
    /// `Globals.Function` as SAM does.
    pub fn function_property<'a>(
        &'a self,
        function: &Resource<'a>,
        name: &str,
    ) -> Option<&'a Value> {
        function
            .properties
            .get(name)
            .or_else(|| self.root.pointer(&format!("/Globals/Function/{name}")))
    }
}

/// The logical id a `{"Ref": id}` names.
pub fn ref_target(value: &Value) -> Option<&str> {
    value.get("Ref")?.as_str()
}

/// The logical id and attribute a `{"Fn::GetAtt": [id, attribute]}` names.
pub fn get_att_target(value: &Value) -> Option<(&str, &str)> {
    match value.get("Fn::GetAtt")?.as_array()?.as_slice() {
        [id, attribute] => Some((id.as_str()?, attribute.as_str()?)),
        _ => None,
    }
}

/// The template string of a `{"Fn::Sub": "..."}` (or `{"Fn::Sub": ["...", {...}]}`).
pub fn sub_template(value: &Value) -> Option<&str> {
    match value.get("Fn::Sub")? {
        Value::String(text) => Some(text),
        Value::Array(parts) => parts.first()?.as_str(),
        _ => None,
    }
}

fn to_json(yaml: serde_norway::Value) -> Result<Value> {
    use serde_norway::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_>>()?),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => bail!("a mapping key that is not a scalar: {other:?}"),
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value)?;
            long_form(name, value)?
        }
    })
}

/// `!Name value` as CloudFormation reads it.
fn long_form(name: &str, value: Value) -> Result<Value> {
    let key = match name {
        "Ref" | "Condition" => name.to_owned(),
        "GetAtt" => {
            // `!GetAtt A.B.C` is `["A", "B.C"]`.
            let value = match value {
                Value::String(text) => match text.split_once('.') {
                    Some((id, attribute)) => Value::from(vec![id, attribute]),
                    None => bail!("!GetAtt {text} names no attribute"),
                },
                other => other,
            };
            return Ok(single("Fn::GetAtt", value));
        }
        "Base64" | "Cidr" | "FindInMap" | "GetAZs" | "ImportValue" | "Join" | "Select"
        | "Split" | "Sub" | "Transform" | "And" | "Equals" | "If" | "Not" | "Or" | "Length"
        | "ToJsonString" | "ForEach" => format!("Fn::{name}"),
        other => bail!("unknown CloudFormation tag !{other}"),
    };
    Ok(single(&key, value))
}

fn single(key: &str, value: Value) -> Value {
    let mut object = Map::new();
    object.insert(key.to_owned(), value);
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let template = Template::from_yaml(
            r#"
Resources:
  Thing:
    Type: AWS::SQS::Queue
    Properties:
      A: !Ref Param
      B: !GetAtt Queue.Arn
      C: !Sub "${AWS::StackName}-x"
      D: !If [Cond, !Ref X, !Ref AWS::NoValue]
      E: !GetAtt [Queue, Arn]
      F: { "Fn::Sub": "long" }
"#,
        )
        .unwrap();
        let properties = template.resource("Thing").unwrap().properties;
        assert_eq!(
            properties,
            &json!({
                "A": {"Ref": "Param"},
                "B": {"Fn::GetAtt": ["Queue", "Arn"]},
                "C": {"Fn::Sub": "${AWS::StackName}-x"},
                "D": {"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]},
                "E": {"Fn::GetAtt": ["Queue", "Arn"]},
                "F": {"Fn::Sub": "long"},
            })
        );
    }

    #[test]
    fn unknown_tags_and_missing_resources_are_errors() {
        assert!(Template::from_yaml("Resources:\n  X: !Frobnicate y\n").is_err());
        assert!(Template::from_yaml("Parameters: {}\n").is_err());
    }
}
