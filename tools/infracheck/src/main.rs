//! `infracheck [TEMPLATE]`: prints every broken least-privilege promise in the
//! template (default infra/template.yaml) and fails if there is one.

use std::path::PathBuf;
use std::process::ExitCode;

use infracheck::least_privilege::{check, PROMISES};
use infracheck::template::{Template, TEMPLATE_PATH};

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TEMPLATE_PATH));
    let template = match Template::load(&path) {
        Ok(template) => template,
        Err(error) => {
            eprintln!("infracheck: {error:#}");
            return ExitCode::from(2);
        }
    };
    let violations = check(&template, PROMISES);
    if violations.is_empty() {
        println!(
            "infracheck: {}: least-privilege promises hold",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    for violation in &violations {
        eprintln!("{}: {violation}", path.display());
    }
    eprintln!(
        "infracheck: {} broken least-privilege promise(s); fix the template or, if the \
         function's needs changed, its promise in tools/infracheck/src/least_privilege.rs",
        violations.len()
    );
    ExitCode::FAILURE
}
