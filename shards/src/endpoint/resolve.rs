//! Where a call command's target goes (a blind transfer's `target`, a
//! click-to-dial's `to`): a number or URI through the static routes to a
//! trunk, else a local extension's registered contact, else a SIP URI with
//! an IP address as given. Host names are not resolved on a shard. Also
//! starts click-to-dial calls.

use super::targets::{Resolver, TargetError};
use super::SipEndpoint;
use crate::call::{CommandError, Handled, Input, Originate, Target};
use crate::cdr::Direction;
use crate::time::Now;

impl SipEndpoint {
    /// The one leg a transfer to `target` rings, or why there is none
    /// (a message starting with `target:`).
    pub(super) fn resolve_target(&mut self, now: Now, target: &str) -> Result<Target, TargetError> {
        self.command_target(now, target)
    }

    /// See [`Resolver::command_target`].
    fn command_target(&mut self, now: Now, target: &str) -> Result<Target, TargetError> {
        let resolver = Resolver {
            settings: &self.settings,
            routing: &self.routing,
            now,
        };
        resolver.command_target(target, &mut self.select)
    }

    /// Click-to-dial: `from` is a local extension (rung first), `to` any
    /// target `resolve_target` takes.
    pub(super) fn originate(
        &mut self,
        now: Now,
        from: &str,
        to: &str,
    ) -> Result<String, CommandError> {
        let resolver = self.resolver(now);
        let realm = resolver.first_realm();
        let first = resolver.first_binding(from, &realm).ok_or_else(|| {
            CommandError::BadRequest(format!("from: extension {from} has no registered contact"))
        })?;
        let target = self
            .command_target(now, to)
            .map_err(|e| CommandError::BadRequest(e.describe("to")))?;
        let to_user = to
            .trim()
            .trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or(to)
            .to_string();
        let trunk = target.permit.as_ref().map(|_| "trunk".to_string());
        let direction = if trunk.is_some() {
            Direction::Outbound
        } else {
            Direction::Internal
        };
        let record = self.settings.record_all;
        let input = Input::Originate(Originate {
            first,
            from_user: from.to_string(),
            targets: vec![target],
            to_user,
            realm,
            direction,
            route: None,
            trunk: None,
            record,
        });
        match self.calls.handle(now, input, self.relay.as_mut()) {
            Handled::Originated(result) => result,
            _ => Err(CommandError::Unavailable("the call was not placed".into())),
        }
    }
}
