//! THREAD (RFC 5256): the ORDEREDSUBJECT (§2.2) and REFERENCES (§2.3) algorithms over the
//! messages a search found, and the THREAD response's nesting (§4).
//!
//! Input is one `ThreadMessage` per message in mailbox order (the order breaks ties of
//! sent dates, RFC 5256 §2.2), with its base subject already made by `collation`. Output
//! is a forest of `ThreadNode`s whose sibling lists are sorted; `render` writes it as the
//! response's thread lists. Where the RFC leaves a choice, Dovecot's choice is taken, since
//! clients know its answers: a dummy at the top with one child is replaced by that child,
//! and a message whose Message-ID an earlier message already had is threaded as if it had
//! none.
//!
//! Pure: no I/O, no store. Work grows with the messages and their references: sorting is
//! n log n, and a loop check walks up a parent chain only when the message to be linked
//! has children already (a new message has none). A
//! thread may be as deep as the mailbox is long (each message answering the one before),
//! so nothing here recurses along the nesting: the forest is an arena of nodes and every
//! walk keeps its own stack.
//!
//! The input is the senders' header fields, so it may be hostile: References fields of
//! thousands of ids, ids a megabyte long, references that go round in circles, mailboxes
//! of millions of ids. `ReferenceLimits` bounds what one THREAD holds and does: ids per
//! message, octets per id, ids over the whole command, steps of a loop check. Past a
//! limit the answer is still a valid THREAD response, only less deeply linked.

use std::collections::HashMap;

/// One message as threading sees it.
#[derive(Debug, Clone)]
pub struct ThreadMessage {
    /// What the response calls it: a sequence number, or a UID for UID THREAD.
    pub number: u32,
    /// RFC 5256 §2.2: the Date header in UTC, else the internal date.
    pub sent_date_unix: i64,
    /// The casemapped base subject (`collation::base_subject`).
    pub base_subject: String,
    /// The subject had `Re:`, `Fwd:`, `(fwd)` or `[fwd: ...]`.
    pub reply_or_forward: bool,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The References ids, oldest first; when there are none, the first In-Reply-To id.
    pub references: Vec<String>,
}

/// One node of a thread: a message (its index in the input), or a dummy that only holds
/// children together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadNode {
    pub message: Option<usize>,
    /// Indexes into `Forest::nodes`, sorted by sent date.
    pub children: Vec<usize>,
}

/// The threads: `roots` index `nodes`, in the order they are answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forest {
    pub nodes: Vec<ThreadNode>,
    pub roots: Vec<usize>,
}

impl Forest {
    fn push(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(ThreadNode {
            message,
            children: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The sort key of a node: its message's sent date and mailbox order; a dummy's is its
    /// earliest child's (a dummy's children are always messages).
    fn key(&self, messages: &[ThreadMessage], node: usize) -> (i64, usize) {
        let message_key = |index: usize| (messages[index].sent_date_unix, index);
        match self.nodes[node].message {
            Some(index) => message_key(index),
            None => self.nodes[node]
                .children
                .iter()
                .filter_map(|&child| self.nodes[child].message)
                .map(message_key)
                .min()
                .unwrap_or((i64::MAX, usize::MAX)),
        }
    }

    /// The message that gives a top-level node its subject: itself, or a dummy's earliest
    /// child.
    fn subject_message(&self, messages: &[ThreadMessage], node: usize) -> Option<usize> {
        match self.nodes[node].message {
            Some(index) => Some(index),
            None => self.nodes[node]
                .children
                .iter()
                .filter_map(|&child| self.nodes[child].message)
                .min_by_key(|&index| (messages[index].sent_date_unix, index)),
        }
    }

    /// RFC 5256 §2.3 step 6 (and §2.2): every list of siblings, and the roots, by date.
    fn sort(&mut self, messages: &[ThreadMessage]) {
        for node in 0..self.nodes.len() {
            let mut children = std::mem::take(&mut self.nodes[node].children);
            children.sort_by_key(|&child| self.key(messages, child));
            self.nodes[node].children = children;
        }
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_key(|&root| self.key(messages, root));
        self.roots = roots;
    }
}

/// ORDEREDSUBJECT: messages grouped by base subject; in each group the earliest message
/// is the parent of all the others, in date order; groups in the order of their first
/// message.
pub fn ordered_subject(messages: &[ThreadMessage]) -> Forest {
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by(|&left, &right| {
        messages[left]
            .base_subject
            .cmp(&messages[right].base_subject)
            .then(
                messages[left]
                    .sent_date_unix
                    .cmp(&messages[right].sent_date_unix),
            )
            .then(left.cmp(&right))
    });
    let mut forest = Forest::default();
    let mut previous_subject: Option<&str> = None;
    for index in order {
        let subject = messages[index].base_subject.as_str();
        let node = forest.push(Some(index));
        match forest.roots.last() {
            Some(&root) if previous_subject == Some(subject) => {
                forest.nodes[root].children.push(node);
            }
            _ => forest.roots.push(node),
        }
        previous_subject = Some(subject);
    }
    forest.sort(messages);
    forest
}

/// How much of the senders' References one REFERENCES threading takes in (see the module
/// doc). Every limit only ever drops links, never messages: each message is in the answer
/// exactly once whatever the input.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceLimits {
    /// Ids considered per message: the first and the last ones. RFC 5256 §3 (REFERENCES,
    /// step 1.A) links every id to the next, so a References field of N ids costs N
    /// containers; threading needs the last id (the parent, step 1.B) and the nearest
    /// ancestors most, and the first one names the thread's start, which is also what
    /// news software keeps when it trims a long References field (RFC 5537 §3.4.4 removes
    /// ids from the second one on).
    pub per_message_max: usize,
    /// An id longer than this is ignored: a msg-id cannot be folded, so a longer one cannot
    /// fit on a header line (RFC 5322 §2.1.1: 998 octets).
    pub id_octets_max: usize,
    /// Ids considered over the whole command. Past it a message keeps only its parent (its
    /// last id), so memory grows by at most one id per message.
    pub total_max: usize,
    /// Steps of one loop check (walking up from the parent-to-be). A check that would walk
    /// further refuses the link as if it made a loop: a loop is never made, and a hostile
    /// mailbox of long chains linked in reverse order costs at most this much per link.
    pub ancestor_walk_max: usize,
}

impl Default for ReferenceLimits {
    fn default() -> ReferenceLimits {
        ReferenceLimits {
            per_message_max: 64,
            id_octets_max: 998,
            total_max: 1_000_000,
            ancestor_walk_max: 1_000,
        }
    }
}

impl ReferenceLimits {
    /// The ids of `references` that threading considers, oldest first; takes them from
    /// `budget` (the ids left for the command).
    fn considered<'a>(&self, references: &'a [String], budget: &mut usize) -> Vec<&'a str> {
        let usable: Vec<&str> = references
            .iter()
            .map(String::as_str)
            .filter(|id| !id.is_empty() && id.len() <= self.id_octets_max)
            .collect();
        let mut chosen: Vec<&str> = if usable.len() > self.per_message_max {
            let last = self.per_message_max.saturating_sub(1);
            usable
                .iter()
                .take(1)
                .chain(&usable[usable.len() - last..])
                .copied()
                .collect()
        } else {
            usable
        };
        if chosen.len() > *budget {
            // Only the parent: step 1.B needs it, and it is one id per message.
            chosen.drain(..chosen.len().saturating_sub(1));
        }
        *budget = budget.saturating_sub(chosen.len());
        chosen
    }
}

/// A container of the REFERENCES algorithm: a Message-ID seen, with or without a message.
#[derive(Debug, Default, Clone)]
struct Container {
    message: Option<usize>,
    parent: Option<usize>,
    /// Some container has this one as its parent (so it may be an ancestor of another).
    has_children: bool,
}

#[derive(Debug)]
struct Linker {
    containers: Vec<Container>,
    by_id: HashMap<String, usize>,
    /// Steps a loop check may take (`ReferenceLimits::ancestor_walk_max`).
    ancestor_walk_max: usize,
}

impl Linker {
    fn new_container(&mut self) -> usize {
        self.containers.push(Container::default());
        self.containers.len() - 1
    }

    fn container_for(&mut self, id: &str) -> usize {
        if let Some(&found) = self.by_id.get(id) {
            return found;
        }
        let index = self.new_container();
        self.by_id.insert(id.to_owned(), index);
        index
    }

    /// Whether `ancestor` may be `node` or above it: true when it is, and when finding out
    /// would take more than `ancestor_walk_max` steps. Parent chains never loop (`link`
    /// refuses what would make one), so the walk ends; one without children is above
    /// nothing, so linking a new message (the common case, even in a very long thread)
    /// walks nowhere.
    fn may_be_ancestor(&self, ancestor: usize, mut node: usize) -> bool {
        if ancestor != node && !self.containers[ancestor].has_children {
            return false;
        }
        for _ in 0..=self.ancestor_walk_max {
            if node == ancestor {
                return true;
            }
            match self.containers[node].parent {
                Some(parent) => node = parent,
                None => return false,
            }
        }
        true
    }

    /// RFC 5256 §2.3 step 1.A: make `parent` the parent of `child`, unless `child` has a
    /// parent already or the link would make a loop.
    fn link(&mut self, parent: usize, child: usize) {
        if self.containers[child].parent.is_some() || self.may_be_ancestor(child, parent) {
            return;
        }
        self.containers[child].parent = Some(parent);
        self.containers[parent].has_children = true;
    }
}

/// REFERENCES: threads from Message-ID, References and In-Reply-To, then the top-level
/// threads with the same base subject gathered together (RFC 5256 §2.3 steps 1 to 6).
pub fn references(messages: &[ThreadMessage]) -> Forest {
    references_within(messages, ReferenceLimits::default())
}

/// `references` under other limits (the tests make them small).
pub fn references_within(messages: &[ThreadMessage], limits: ReferenceLimits) -> Forest {
    let mut linker = Linker {
        containers: Vec::new(),
        by_id: HashMap::new(),
        ancestor_walk_max: limits.ancestor_walk_max,
    };
    let mut budget = limits.total_max;
    // (1) Link messages by their references.
    for (index, message) in messages.iter().enumerate() {
        let own = match message
            .message_id
            .as_deref()
            .filter(|id| !id.is_empty() && id.len() <= limits.id_octets_max)
        {
            Some(id) => {
                let found = linker.container_for(id);
                if linker.containers[found].message.is_none() {
                    found
                } else {
                    // A duplicate Message-ID: only the first message keeps it.
                    linker.new_container()
                }
            }
            None => linker.new_container(),
        };
        linker.containers[own].message = Some(index);
        // (1.A) Each reference is the parent of the next.
        let mut previous: Option<usize> = None;
        for reference in limits.considered(&message.references, &mut budget) {
            let current = linker.container_for(reference);
            if let Some(parent) = previous {
                linker.link(parent, current);
            }
            previous = Some(current);
        }
        // (1.B) The last reference is the message's parent: a parent that came from
        // another message's (perhaps cut) References gives way, and a message without
        // references is a root.
        if linker.containers[own].parent != previous {
            linker.containers[own].parent = None;
            if let Some(parent) = previous {
                linker.link(parent, own);
            }
        }
    }
    // (2) and (3): the roots, and dummies taken out. Each message hangs under its nearest
    // ancestor that is a message, or under its topmost ancestor (a dummy) when none is;
    // the arena's node N is container N.
    let mut forest = Forest {
        nodes: linker
            .containers
            .iter()
            .map(|container| ThreadNode {
                message: container.message,
                children: Vec::new(),
            })
            .collect(),
        roots: Vec::new(),
    };
    let mut top: Vec<usize> = Vec::new();
    // For a dummy: its nearest ancestor that is a message, or its topmost ancestor. Kept
    // once found, so chains of dummies are walked once.
    let mut anchors: Vec<Option<usize>> = vec![None; linker.containers.len()];
    for (index, container) in linker.containers.iter().enumerate() {
        let Some(parent) = container.parent else {
            top.push(index);
            continue;
        };
        if container.message.is_none() {
            continue;
        }
        let anchor = if linker.containers[parent].message.is_some() {
            parent
        } else {
            let mut path = Vec::new();
            let mut at = parent;
            let found = loop {
                if let Some(known) = anchors[at] {
                    break known;
                }
                path.push(at);
                match linker.containers[at].parent {
                    Some(higher) if linker.containers[higher].message.is_some() => break higher,
                    Some(higher) => at = higher,
                    None => break at,
                }
            };
            for dummy in path {
                anchors[dummy] = Some(found);
            }
            found
        };
        forest.nodes[anchor].children.push(index);
    }
    // A dummy at the top without children goes; with one child, the child goes up.
    let mut roots: Vec<usize> = Vec::with_capacity(top.len());
    for node in top {
        match (
            forest.nodes[node].message,
            forest.nodes[node].children.as_slice(),
        ) {
            (None, []) => {}
            (None, [only]) => roots.push(*only),
            _ => roots.push(node),
        }
    }
    // (4) The top level by sent date (a dummy by its earliest child).
    roots.sort_by_key(|&root| forest.key(messages, root));
    // (5.B) The subject table: which top-level node stands for each base subject.
    let subject_of = |forest: &Forest, node: usize| -> Option<usize> {
        forest
            .subject_message(messages, node)
            .filter(|&index| !messages[index].base_subject.is_empty())
    };
    let is_reply = |forest: &Forest, node: usize| {
        forest.nodes[node]
            .message
            .is_some_and(|index| messages[index].reply_or_forward)
    };
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &node in &roots {
        let Some(subject_index) = subject_of(&forest, node) else {
            continue;
        };
        let subject = messages[subject_index].base_subject.as_str();
        match table.get(subject) {
            None => {
                table.insert(subject, node);
            }
            Some(&held) => {
                if forest.nodes[held].message.is_some()
                    && (forest.nodes[node].message.is_none()
                        || (is_reply(&forest, held) && !is_reply(&forest, node)))
                {
                    table.insert(subject, node);
                }
            }
        }
    }
    // (5.C) Merge every other top-level thread into the one the table holds for its
    // subject; the table follows a holder that a new dummy replaces.
    let mut merged_roots: Vec<usize> = Vec::with_capacity(roots.len());
    let mut gone: Vec<bool> = vec![false; forest.nodes.len()];
    for &node in &roots {
        if gone[node] {
            continue;
        }
        let Some(subject_index) = subject_of(&forest, node) else {
            continue;
        };
        let subject = messages[subject_index].base_subject.as_str();
        let Some(&held) = table.get(subject) else {
            continue;
        };
        if held == node {
            continue;
        }
        let current_is_dummy = forest.nodes[node].message.is_none();
        let held_is_dummy = forest.nodes[held].message.is_none();
        gone[node] = true;
        if current_is_dummy && held_is_dummy {
            // Both dummies: the children become siblings.
            let children = std::mem::take(&mut forest.nodes[node].children);
            forest.nodes[held].children.extend(children);
        } else if held_is_dummy || (is_reply(&forest, node) && !is_reply(&forest, held)) {
            // Into the dummy, or a reply under the original.
            forest.nodes[held].children.push(node);
        } else {
            // Otherwise both under a new dummy, which now holds the subject.
            let dummy = forest.push(None);
            forest.nodes[dummy].children = vec![held, node];
            gone[held] = true;
            gone.push(false);
            merged_roots.push(dummy);
            table.insert(subject, dummy);
        }
    }
    forest.roots = roots
        .into_iter()
        .chain(merged_roots)
        .filter(|&node| !gone[node])
        .collect();
    // (6) Every list of siblings by sent date, and the top level again.
    forest.sort(messages);
    forest
}

/// The THREAD response's data: `(1 2 (3)(4))(5)` (RFC 5256 §4), numbers from the input.
/// A node with one child is followed by it (`1 2`), one with more by a list per child.
pub fn render(forest: &Forest, messages: &[ThreadMessage]) -> String {
    enum Step {
        /// `(`, the node, its children, `)`.
        Thread(usize),
        /// A node's children: the only one inline, or one list each.
        Children(usize),
        Close,
    }
    let number = |node: usize| {
        forest.nodes[node]
            .message
            .map(|index| messages[index].number)
    };
    let mut out = String::new();
    let mut stack: Vec<Step> = forest
        .roots
        .iter()
        .rev()
        .map(|&root| Step::Thread(root))
        .collect();
    while let Some(step) = stack.pop() {
        match step {
            Step::Thread(node) => {
                out.push('(');
                if let Some(number) = number(node) {
                    out.push_str(&number.to_string());
                    if !forest.nodes[node].children.is_empty() {
                        out.push(' ');
                    }
                }
                stack.push(Step::Close);
                stack.push(Step::Children(node));
            }
            Step::Children(node) => match forest.nodes[node].children.as_slice() {
                [only] => {
                    if let Some(number) = number(*only) {
                        out.push_str(&number.to_string());
                        if !forest.nodes[*only].children.is_empty() {
                            out.push(' ');
                        }
                    }
                    stack.push(Step::Children(*only));
                }
                children => stack.extend(children.iter().rev().map(|&child| Step::Thread(child))),
            },
            Step::Close => out.push(')'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collation::base_subject;

    /// A message for the tests: number, date, subject, Message-ID, references.
    fn message(
        number: u32,
        date: i64,
        subject: &str,
        id: &str,
        references: &[&str],
    ) -> ThreadMessage {
        let (base, reply_or_forward) = base_subject(subject);
        ThreadMessage {
            number,
            sent_date_unix: date,
            base_subject: base,
            reply_or_forward,
            message_id: (!id.is_empty()).then(|| id.to_owned()),
            references: references.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    fn check_references(messages: &[ThreadMessage], expected: &str) {
        assert_eq!(render(&references(messages), messages), expected);
    }

    fn check_ordered_subject(messages: &[ThreadMessage], expected: &str) {
        assert_eq!(render(&ordered_subject(messages), messages), expected);
    }

    #[test]
    fn references_links_parents_and_children() {
        // A chain is written flat; two answers to one message as two lists.
        check_references(
            &[
                message(1, 10, "Plan", "a", &[]),
                message(2, 20, "Re: Plan", "b", &["a"]),
                message(3, 30, "Re: Plan", "c", &["a", "b"]),
            ],
            "(1 2 3)",
        );
        check_references(
            &[
                message(1, 10, "Plan", "a", &[]),
                message(2, 20, "Re: Plan", "b", &["a"]),
                message(3, 30, "Re: Plan", "c", &["a"]),
                message(4, 40, "Re: Plan", "d", &["a", "b"]),
            ],
            "(1 (2 4)(3))",
        );
        // Siblings by sent date, not by arrival; ties by mailbox order.
        check_references(
            &[
                message(1, 10, "Plan", "a", &[]),
                message(2, 50, "Re: Plan", "b", &["a"]),
                message(3, 30, "Re: Plan", "c", &["a"]),
                message(4, 30, "Re: Plan", "d", &["a"]),
            ],
            "(1 (3)(4)(2))",
        );
    }

    #[test]
    fn references_dummies() {
        // Two answers to a message we do not have: a dummy holds them.
        check_references(
            &[
                message(1, 10, "Re: Gone", "b", &["x"]),
                message(2, 20, "Re: Gone", "c", &["x"]),
            ],
            "((1)(2))",
        );
        // One answer: the dummy goes, the answer is a root.
        check_references(&[message(1, 10, "Re: Gone", "b", &["x"])], "(1)");
        // A dummy in the middle of a thread gives its children to its parent.
        check_references(
            &[
                message(1, 10, "Top", "a", &[]),
                message(2, 20, "Re: Top", "c", &["a", "missing"]),
                message(3, 30, "Re: Top", "d", &["a", "missing"]),
            ],
            "(1 (2)(3))",
        );
    }

    #[test]
    fn references_odd_headers() {
        // A repeated Message-ID: the second message is threaded as if it had none.
        check_references(
            &[
                message(1, 10, "One", "same", &[]),
                message(2, 20, "Two", "same", &[]),
                message(3, 30, "Re: One", "r", &["same"]),
            ],
            "(1 3)(2)",
        );
        // References that loop are not followed round.
        check_references(
            &[
                message(1, 10, "Loop", "a", &["b"]),
                message(2, 20, "Loop", "b", &["a"]),
                message(3, 30, "Self", "c", &["c"]),
            ],
            "(2 1)(3)",
        );
        // No references: a root, even where another message's References put it below
        // something (RFC 5256 §2.3 step 1.B).
        check_references(
            &[
                message(1, 10, "Later", "z", &["a", "b"]),
                message(2, 5, "First", "b", &[]),
            ],
            "(2 1)",
        );
    }

    #[test]
    fn references_gathers_subjects() {
        // A reply without references goes under the original with that subject.
        check_references(
            &[
                message(1, 10, "Hello", "a", &[]),
                message(2, 20, "Re: hello", "b", &[]),
            ],
            "(1 2)",
        );
        // Two originals with one subject: both under a new dummy.
        check_references(
            &[
                message(1, 10, "Hello", "a", &[]),
                message(2, 20, "Hello", "b", &[]),
                message(3, 30, "Re: Hello", "c", &[]),
            ],
            "((1)(2)(3))",
        );
        // The original stands for the subject even when the reply came first.
        check_references(
            &[
                message(1, 10, "Re: Hello", "b", &[]),
                message(2, 20, "Hello", "a", &[]),
            ],
            "(2 1)",
        );
        // An empty subject gathers nothing.
        check_references(
            &[
                message(1, 10, "", "a", &[]),
                message(2, 20, "Re:", "b", &[]),
            ],
            "(1)(2)",
        );
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        check_ordered_subject(
            &[
                message(1, 10, "Hello", "", &[]),
                message(2, 30, "Re: hello", "", &[]),
                message(3, 20, "Other", "", &[]),
                message(4, 40, "hello (fwd)", "", &[]),
                message(5, 5, "Re: Alone", "", &[]),
                message(6, 50, "Other", "", &[]),
            ],
            "(5)(1 (2)(4))(3 6)",
        );
    }

    #[test]
    fn a_very_long_thread_needs_no_deep_stack() {
        let count = 200_000;
        let messages: Vec<ThreadMessage> = (0..count)
            .map(|index| {
                let references = if index == 0 {
                    Vec::new()
                } else {
                    vec![format!("m{}", index - 1)]
                };
                ThreadMessage {
                    number: index + 1,
                    sent_date_unix: i64::from(index),
                    base_subject: "S".to_owned(),
                    reply_or_forward: index > 0,
                    message_id: Some(format!("m{index}")),
                    references,
                }
            })
            .collect();
        let rendered = render(&references(&messages), &messages);
        assert!(rendered.starts_with("(1 2 3 "));
        assert!(rendered.ends_with(" 200000)"));
    }
    /// Every message of `messages` is in the answer exactly once, and the answer is
    /// balanced.
    fn check_each_once(messages: &[ThreadMessage], rendered: &str) {
        let mut depth = 0i64;
        for character in rendered.chars() {
            match character {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "unbalanced: {rendered}");
        }
        assert_eq!(depth, 0, "unbalanced: {rendered}");
        let mut numbers: Vec<u32> = rendered
            .split(|character: char| !character.is_ascii_digit())
            .filter(|number| !number.is_empty())
            .map(|number| number.parse().expect("a number"))
            .collect();
        numbers.sort_unstable();
        let expected: Vec<u32> = messages.iter().map(|message| message.number).collect();
        assert_eq!(numbers, expected, "each message once");
    }

    #[test]
    fn a_huge_references_field_costs_a_bounded_number_of_containers() {
        // 100,000 ids, most of them long; the parent (the last id) still counts.
        let mut huge: Vec<String> = vec!["start".to_owned()];
        huge.extend((0..100_000).map(|index| format!("{index:0>200}@flood")));
        huge.push("x".repeat(5_000));
        huge.push("a".to_owned());
        let messages = vec![
            message(1, 10, "Plan", "a", &[]),
            ThreadMessage {
                references: huge,
                ..message(2, 20, "Re: Plan", "b", &[])
            },
        ];
        let forest = references(&messages);
        let limits = ReferenceLimits::default();
        // The arena's nodes are the containers (and dummies the subjects added).
        assert!(
            forest.nodes.len() <= messages.len() + limits.per_message_max + 1,
            "{} containers",
            forest.nodes.len()
        );
        assert_eq!(render(&forest, &messages), "(1 2)");
    }

    #[test]
    fn references_that_go_round_are_safe() {
        // A ring: each message names the next as its parent; a References field that
        // repeats itself; a message that is its own parent and grandparent.
        let count = 5_000u32;
        let mut messages: Vec<ThreadMessage> = (0..count)
            .map(|index| {
                let next = format!("r{}", (index + 1) % count);
                let id = format!("r{index}");
                ThreadMessage {
                    references: vec![next],
                    ..message(index + 1, i64::from(index), "Ring", &id, &[])
                }
            })
            .collect();
        messages.push(message(
            count + 1,
            1,
            "Twice",
            "t",
            &["u", "v", "u", "v", "t", "u"],
        ));
        messages.push(message(count + 2, 2, "Self", "s", &["s", "s", "s"]));
        let rendered = render(&references(&messages), &messages);
        check_each_once(&messages, &rendered);
    }

    #[test]
    fn millions_of_ids_stay_within_the_total() {
        // Small limits stand for the real ones: 2,000 messages of 300 distinct ids each
        // would be 600,000 containers; the total lets 1,000 in, then one per message.
        let limits = ReferenceLimits {
            per_message_max: 300,
            total_max: 1_000,
            ..ReferenceLimits::default()
        };
        let messages: Vec<ThreadMessage> = (0..2_000u32)
            .map(|index| {
                let references: Vec<String> = (0..300).map(|id| format!("m{index}-{id}")).collect();
                ThreadMessage {
                    references,
                    ..message(index + 1, i64::from(index), "", &format!("own{index}"), &[])
                }
            })
            .collect();
        let forest = references_within(&messages, limits);
        assert!(
            forest.nodes.len() <= 2 * messages.len() + limits.total_max,
            "{} containers",
            forest.nodes.len()
        );
        check_each_once(&messages, &render(&forest, &messages));
    }

    #[test]
    fn a_chain_linked_backwards_costs_bounded_loop_checks() {
        // Each message names its whole ancestry, newest message first: every link joins a
        // container that has children already, the case where a loop check walks. With a
        // walk of at most 50 steps the work stays linear and the answer is complete.
        let count = 3_000u32;
        let limits = ReferenceLimits {
            ancestor_walk_max: 50,
            ..ReferenceLimits::default()
        };
        let messages: Vec<ThreadMessage> = (0..count)
            .rev()
            .enumerate()
            .map(|(position, depth)| {
                let references: Vec<String> = (0..depth).map(|id| format!("c{id}")).collect();
                let number = u32::try_from(position).expect("small") + 1;
                ThreadMessage {
                    references,
                    ..message(number, i64::from(depth), "Chain", &format!("c{depth}"), &[])
                }
            })
            .collect();
        let rendered = render(&references_within(&messages, limits), &messages);
        check_each_once(&messages, &rendered);
        // Under the default limits the same chain is one thread, oldest first.
        let rendered = render(&references(&messages), &messages);
        check_each_once(&messages, &rendered);
        assert!(
            rendered.starts_with(&format!("({} {} ", count, count - 1)),
            "{rendered:.40}"
        );
    }
}
