//! The shape of a saved conversation: each question followed by its answer.
//! A question is saved as soon as it is asked, so a glimpse killed before
//! the answer leaves a question with none; a chat continued from there used
//! to add a second question right after it.

use crate::conversation::{Content, Conversation, Message, Part, Role};

/// Questions asked: user messages in a row count as one.
pub fn question_count(conversation: &Conversation) -> usize {
    let mut count = 0;
    let mut previous = None;
    for m in &conversation.messages {
        if m.role == Role::User && previous != Some(Role::User) {
            count += 1;
        }
        previous = Some(m.role);
    }
    count
}

/// Joins user messages in a row into one question, so that every question
/// is followed by an answer. Says how many messages were joined into others.
pub fn merge_consecutive_questions(conversation: &mut Conversation) -> usize {
    let mut merged = 0;
    let mut out: Vec<Message> = Vec::with_capacity(conversation.messages.len());
    for m in conversation.messages.drain(..) {
        match out.last_mut() {
            Some(last) if last.role == Role::User && m.role == Role::User => {
                let mut parts = into_parts(std::mem::replace(
                    &mut last.content,
                    Content::Parts(Vec::new()),
                ));
                let next = into_parts(m.content);
                if has_text(&parts) && has_text(&next) {
                    parts.push(Part::Text("\n\n".into()));
                }
                parts.extend(next);
                last.content = Content::Parts(parts);
                merged += 1;
            }
            _ => out.push(m),
        }
    }
    conversation.messages = out;
    merged
}

/// Takes off the last question when no answer follows it.
pub fn take_unanswered(conversation: &mut Conversation) -> Option<Message> {
    match conversation.messages.last() {
        Some(m) if m.role == Role::User => conversation.messages.pop(),
        _ => None,
    }
}

fn into_parts(content: Content) -> Vec<Part> {
    match content {
        Content::Text(t) => vec![Part::Text(t)],
        Content::Parts(p) => p,
    }
}

fn has_text(parts: &[Part]) -> bool {
    parts
        .iter()
        .any(|p| matches!(p, Part::Text(t) if !t.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::store::user_message;

    fn conversation(messages: Vec<Message>) -> Conversation {
        Conversation { messages }
    }

    #[test]
    fn questions_in_a_row_count_once_and_merge_into_one() {
        let mut c = conversation(vec![
            Message::text(Role::System, "Be brief."),
            user_message(vec!["/p/a.png".into()], "What is this?"),
            Message::text(Role::User, "Hello?"),
            Message::text(Role::Assistant, "A shelf."),
            Message::text(Role::User, "And the price?"),
            Message::text(Role::Assistant, "3 euros."),
        ]);
        assert_eq!(question_count(&c), 2);
        assert_eq!(merge_consecutive_questions(&mut c), 1);
        assert_eq!(c.messages.len(), 5);
        let merged = &c.messages[1];
        assert_eq!(merged.joined_text(), "What is this?\n\nHello?");
        assert_eq!(merged.images().count(), 1);
        assert_eq!(question_count(&c), 2);
        assert_eq!(merge_consecutive_questions(&mut c), 0);
    }

    #[test]
    fn only_a_last_question_without_answer_is_taken_off() {
        let mut c = conversation(vec![
            Message::text(Role::User, "One"),
            Message::text(Role::Assistant, "Two"),
        ]);
        assert_eq!(take_unanswered(&mut c), None);
        c.push(Message::text(Role::User, "Three?"));
        assert_eq!(question_count(&c), 2);
        let taken = take_unanswered(&mut c).unwrap();
        assert_eq!(taken.joined_text(), "Three?");
        assert_eq!(c.messages.len(), 2);
    }
}
