//! Compiles `checks:` (a site's and a route's) into [`Check`]s: the
//! condition in nginx's `if` syntax and a `redirect` or `respond` answer,
//! every problem reported at its line and column.

use super::diag::Diagnostics;
use super::file::FileCheck;
use super::validate::pos;
use super::validate_steps::{at_offset, redirect_of, respond_of, template_error};
use crate::plan::check::{Check, CheckAnswer, Condition};
use crate::plan::template::Scope;
use serde_saphyr::Spanned;
use std::sync::Arc;

/// The checks of one `checks:` list, compiled in order; variables resolve
/// in `scope` (the route's location groups and the maps), and an answer
/// may also read the groups of its condition's regex.
pub(super) fn checks(
    list: &Option<Spanned<Vec<Spanned<FileCheck>>>>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Vec<Arc<Check>> {
    let Some(list) = list else { return Vec::new() };
    let mut out = Vec::new();
    for c in &list.value {
        let f = &c.value;
        let text = &f.condition.value;
        let condition = match Condition::parse(text, scope) {
            Ok(cond) => Some(cond),
            Err(e) => {
                let at = at_offset(&f.condition, pos(&f.condition), text, e.offset);
                if e.what.starts_with("unknown variable") || e.what.starts_with("`$") {
                    template_error(&e, text, at, ds);
                } else {
                    ds.error(
                        at,
                        format!("{} in condition '{text}'", e.what),
                        "write it as nginx does: `$var`, `$var = text`, `$var != text`, `$var ~ regex` (or `~*`, `!~`, `!~*`)",
                    );
                }
                None
            }
        };
        let groups = condition
            .as_ref()
            .and_then(Condition::regex)
            .map(crate::plan::pattern::Pattern::group_names)
            .unwrap_or_default();
        let answer_scope = Scope {
            last: &groups,
            ..*scope
        };
        let answer = match (&f.redirect, &f.respond) {
            (Some(rd), None) => redirect_of(rd, &answer_scope, ds).map(CheckAnswer::Redirect),
            (None, Some(rs)) => respond_of(rs, &answer_scope, ds).map(CheckAnswer::Respond),
            _ => {
                ds.error(
                    pos(c),
                    format!("check '{text}' needs exactly one of `redirect` and `respond`"),
                    "give it `redirect: {to: URL}` or `respond: {status: 403}`",
                );
                None
            }
        };
        if let (Some(condition), Some(answer)) = (condition, answer) {
            out.push(Arc::new(Check { condition, answer }));
        }
    }
    out
}
