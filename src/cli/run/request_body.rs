//! The request body a plan asks for, as a producer.

use std::fs::File;
use std::io;

use weft::client::{BodyProducer, BytesProducer, Multipart, ReadProducer};

use super::super::exit::Outcome;
use super::super::plan::{BodySource, FormValue};

/// The request body producer the plan asks for, and the Content-Type it needs (a form's,
/// with its boundary).
pub(super) type Body = (Option<Box<dyn BodyProducer>>, Option<String>);

pub(super) fn producer(body: &BodySource) -> Result<Body, Outcome> {
    let read_error = |path: &std::path::Path, e: io::Error| {
        Outcome::ReadInput(format!("cannot read data from {:?}: {e}", path.display()))
    };
    Ok(match body {
        BodySource::None => (None, None),
        BodySource::Bytes(b) => (Some(Box::new(BytesProducer::new(b.clone()))), None),
        BodySource::File(path) => (
            Some(Box::new(
                ReadProducer::file(path).map_err(|e| read_error(path, e))?,
            )),
            None,
        ),
        BodySource::Stdin => (Some(Box::new(ReadProducer::new(io::stdin(), None))), None),
        BodySource::Form(fields) => {
            let mut form = Multipart::new();
            for field in fields {
                form = match &field.value {
                    FormValue::Text(t) => form.text(&field.name, t.clone()),
                    FormValue::File {
                        path,
                        content_type: None,
                        filename: None,
                    } => form
                        .file(&field.name, path)
                        .map_err(|e| read_error(path, e))?,
                    FormValue::File {
                        path,
                        content_type,
                        filename,
                    } => {
                        let file = File::open(path).map_err(|e| read_error(path, e))?;
                        let len = file.metadata().map_err(|e| read_error(path, e))?.len();
                        let name = filename.clone().unwrap_or_else(|| {
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        });
                        let ct = content_type
                            .clone()
                            .unwrap_or_else(|| weft::client::guess_content_type(path).into());
                        form.reader(&field.name, &name, &ct, file, Some(len))
                    }
                };
            }
            let content_type = form.content_type();
            (Some(Box::new(form.into_producer())), Some(content_type))
        }
    })
}
