//! Checks on the AWS SAM template (`infra/template.yaml`) that cfn-lint
//! cannot make: the project's least-privilege promises. The drift test in
//! tools/pipeline-local reads the template through [`template::Template`] too.

pub mod least_privilege;
pub mod template;
