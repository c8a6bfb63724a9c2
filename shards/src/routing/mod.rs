//! Static routing: route and trunk tables, matching, rewriting, target selection.
