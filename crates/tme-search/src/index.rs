//! One account's index on disk: its tantivy schema, opening (and recreating when it cannot
//! be read), applying a batch of changes with the MODSEQ they bring it to, and looking up
//! the messages that hold every trigram of a search string.
//!
//! Blocking: every function here does file I/O and runs on a blocking thread (the async
//! caller, `indexes`, sees to that). Knows nothing of the store or of IMAP: it is given
//! texts and message ids.
//!
//! The MODSEQ the index has reached is the commit's payload (tantivy writes it in
//! `meta.json` with the commit), so documents and watermark are durable together: after a
//! crash the index is at some earlier commit and catches up from its MODSEQ again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tantivy::collector::DocSetCollector;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{NgramTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tme_store::{MessageId, ModSeq};

use crate::SearchError;
use crate::text::GRAM_CHARS;

/// Bumped when the schema or the text rules change: an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 1;
const TOKENIZER_NAME: &str = "tme_trigram";

/// Where a search string must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextScope {
    /// IMAP BODY: the text parts.
    Body,
    /// IMAP TEXT: the header or the text parts.
    Text,
}

/// One message as the index takes it: its normalised texts.
#[derive(Debug, Clone, Default)]
pub struct IndexedMessage {
    pub message_id: MessageId,
    pub header: Vec<String>,
    pub body: Vec<String>,
    /// Text was left out (`search.text_bytes_per_message_max`): the message is a candidate
    /// for every search.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    message_id: Field,
    header: Field,
    body: Field,
    truncated: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let grams = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        message_id: builder.add_u64_field("message_id", INDEXED | FAST | STORED),
        header: builder.add_text_field("header", grams.clone()),
        body: builder.add_text_field("body", grams),
        truncated: builder.add_u64_field("truncated", INDEXED),
    };
    (builder.build(), fields)
}

/// An open account index.
#[derive(Clone)]
pub struct AccountIndex {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl std::fmt::Debug for AccountIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccountIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn payload_of(modseq: ModSeq) -> String {
    format!("tme-search {SCHEMA_VERSION} modseq {modseq}")
}

/// The MODSEQ a payload names, if it is of this version.
fn modseq_of(payload: Option<&str>) -> Option<ModSeq> {
    let rest = payload?.strip_prefix("tme-search ")?;
    let (version, rest) = rest.split_once(' ')?;
    if version.parse::<u32>().ok()? != SCHEMA_VERSION {
        return None;
    }
    rest.strip_prefix("modseq ")?.parse().ok()
}

impl AccountIndex {
    /// Opens the index in `path`, creating it when there is none. An index that cannot be
    /// read, or is of another version, is an error: the caller removes it and calls again.
    pub fn open(path: &Path) -> Result<AccountIndex, SearchError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(path).map_err(|error| SearchError::io(path, error))?;
        let directory = tantivy::directory::MmapDirectory::open(path)
            .map_err(|error| SearchError::Index(error.to_string()))?;
        let fresh = !path.join("meta.json").exists();
        let index = Index::open_or_create(directory, schema.clone())?;
        index.tokenizers().register(
            TOKENIZER_NAME,
            TextAnalyzer::from(NgramTokenizer::new(GRAM_CHARS, GRAM_CHARS, false)?),
        );
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let opened = AccountIndex {
            path: path.to_owned(),
            index,
            reader,
            fields,
        };
        if !fresh {
            let payload = opened.index.load_metas()?.payload;
            if payload.is_some() && modseq_of(payload.as_deref()).is_none() {
                return Err(SearchError::Index(format!(
                    "{}: another version ({payload:?})",
                    path.display()
                )));
            }
        }
        Ok(opened)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The MODSEQ of the last change the index holds (0: none).
    pub fn modseq(&self) -> Result<ModSeq, SearchError> {
        Ok(modseq_of(self.index.load_metas()?.payload.as_deref()).unwrap_or(0))
    }

    fn writer(&self, heap_bytes: usize) -> Result<IndexWriter, SearchError> {
        match self.index.writer_with_num_threads(1, heap_bytes) {
            Ok(writer) => Ok(writer),
            Err(tantivy::TantivyError::LockFailure(..)) => Err(SearchError::Busy),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the messages `removed` and (again) adds `added`, and records `modseq`, in one
    /// commit. A message in both is replaced.
    pub fn apply(
        &self,
        removed: &[MessageId],
        added: &[IndexedMessage],
        modseq: ModSeq,
        heap_bytes: usize,
    ) -> Result<(), SearchError> {
        let writer = self.writer(heap_bytes)?;
        for &id in removed
            .iter()
            .chain(added.iter().map(|message| &message.message_id))
        {
            writer.delete_term(Term::from_field_u64(self.fields.message_id, id_u64(id)));
        }
        for message in added {
            let mut document = TantivyDocument::default();
            document.add_u64(self.fields.message_id, id_u64(message.message_id));
            for text in &message.header {
                document.add_text(self.fields.header, text);
            }
            for text in &message.body {
                document.add_text(self.fields.body, text);
            }
            document.add_u64(self.fields.truncated, u64::from(message.truncated));
            writer.add_document(document)?;
        }
        self.commit(writer, modseq)
    }

    /// Empties the index and sets its MODSEQ to 0, for a rebuild.
    pub fn clear(&self, heap_bytes: usize) -> Result<(), SearchError> {
        let writer = self.writer(heap_bytes)?;
        writer.delete_all_documents()?;
        self.commit(writer, 0)
    }

    fn commit(&self, mut writer: IndexWriter, modseq: ModSeq) -> Result<(), SearchError> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload_of(modseq));
        prepared.commit()?;
        // Merges run on the writer's threads; waiting for them here keeps the writer (and
        // its memory) from outliving the batch.
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Messages in the index.
    pub fn documents(&self) -> Result<u64, SearchError> {
        self.reader.reload()?;
        Ok(self.reader.searcher().num_docs())
    }

    /// The messages that may hold a string whose trigrams are `grams` in `scope`: every
    /// message holding all of them there, and every truncated message.
    pub fn candidates(
        &self,
        scope: TextScope,
        grams: &[String],
    ) -> Result<HashSet<MessageId>, SearchError> {
        let all_in = |field: Field| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                grams
                    .iter()
                    .map(|gram| {
                        let query: Box<dyn Query> = Box::new(TermQuery::new(
                            Term::from_field_text(field, gram),
                            IndexRecordOption::Basic,
                        ));
                        (Occur::Must, query)
                    })
                    .collect(),
            ))
        };
        let mut alternatives: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Should, all_in(self.fields.body)),
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.truncated, 1),
                    IndexRecordOption::Basic,
                )),
            ),
        ];
        if scope == TextScope::Text {
            alternatives.push((Occur::Should, all_in(self.fields.header)));
        }
        let query = BooleanQuery::new(alternatives);
        // Another process (`tme search reindex`) may have committed since.
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let found = searcher.search(&query, &DocSetCollector)?;
        let mut columns = std::collections::HashMap::new();
        let mut ids = HashSet::with_capacity(found.len());
        for address in found {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("message_id")?,
                ),
            };
            if let Some(id) = column.first(address.doc_id) {
                ids.insert(MessageId::try_from(id).unwrap_or(MessageId::MAX));
            }
        }
        Ok(ids)
    }

    /// Makes the reader see the last commit (another process's too).
    pub fn reload(&self) -> Result<(), SearchError> {
        self.reader.reload()?;
        Ok(())
    }
}

fn id_u64(id: MessageId) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        assert_eq!(modseq_of(Some(&payload_of(42))), Some(42));
        assert_eq!(modseq_of(Some("tme-search 0 modseq 42")), None);
        assert_eq!(modseq_of(None), None);
    }
}
