//! `Iterator`: an iterator living in the server, advanced one item per call.
#![forbid(unsafe_code)]

/// The server-side iterator.
pub mod server {
    use std::sync::Mutex;

    use serde::Serialize;

    use crate::sync::lock;
    use crate::value::{to_value, Value};
    use crate::SyncError;

    type Items = Box<dyn Iterator<Item = Result<Value, SyncError>> + Send>;

    /// An iterator served by a manager (Python's `Iterator` typeid): each
    /// `next()` call on its proxy takes one item from it in the server.
    ///
    /// Return one from a `#[shared]` method marked `#[proxy]` to hand the
    /// caller a lazy, server-side iterator; the caller turns the proxy into
    /// a typed [`IterProxy`](crate::sync::IterProxy) with `.into()` or
    /// [`typed`](RemoteIterProxy::typed):
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// use managers::sync::{IterProxy, RemoteIter};
    ///
    /// pub struct Maths;
    ///
    /// #[managers::shared]
    /// impl Maths {
    ///     /// 0, 1, 4, 9, ... computed one at a time in the server.
    ///     #[proxy]
    ///     pub fn squares(&self, n: u64) -> RemoteIter {
    ///         RemoteIter::new((0..n).map(|i| i * i))
    ///     }
    /// }
    ///
    /// fn sum(maths: &MathsProxy) -> managers::Result<u64> {
    ///     let squares: IterProxy<u64> = maths.squares(4)?.into();
    ///     squares.sum()
    /// }
    /// ```
    pub struct RemoteIter {
        items: Mutex<Items>,
    }

    impl RemoteIter {
        /// Serve `items`: each is turned into a [`Value`] when it is taken,
        /// so the iterator stays lazy (an endless one is fine).
        pub fn new<I>(items: I) -> RemoteIter
        where
            I: IntoIterator,
            I::IntoIter: Send + 'static,
            I::Item: Serialize,
        {
            RemoteIter::from_results(
                items
                    .into_iter()
                    .map(|item| to_value(&item).map_err(|e| SyncError::ValueError(e.to_string()))),
            )
        }

        /// Serve items that may fail, as the built-in containers' iterators
        /// do when their container changes under them. After an error the
        /// iterator is exhausted.
        pub(crate) fn from_results<I>(items: I) -> RemoteIter
        where
            I: Iterator<Item = Result<Value, SyncError>> + Send + 'static,
        {
            let mut failed = false;
            let items = items
                .take_while(move |item| !std::mem::replace(&mut failed, item.is_err()))
                .fuse();
            RemoteIter {
                items: Mutex::new(Box::new(items)),
            }
        }
    }

    impl std::fmt::Debug for RemoteIter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RemoteIter").finish_non_exhaustive()
        }
    }

    #[crate::shared(typeid = "Iterator")]
    impl RemoteIter {
        /// The next item, `None` once exhausted (Python's `StopIteration`).
        #[py("__next__", reply = next, back = next)]
        #[py("close", incoming, plan = crate::__private::close_plan)]
        #[py("send", "throw", incoming, plan = crate::__private::unsupported_plan)]
        pub fn next(&self) -> Result<Option<Value>, SyncError> {
            lock(&self.items).next().transpose()
        }
    }

    impl RemoteIterProxy {
        /// This iterator's items as `T`s.
        pub fn typed<T>(self) -> crate::sync::IterProxy<T> {
            self.into()
        }
    }

    impl RemoteIterAsyncProxy {
        /// This iterator's items as `T`s, as a stream.
        pub fn typed<T>(self) -> crate::sync::IterAsyncProxy<T> {
            self.into()
        }
    }
}

/// The typed iterator proxies.
pub mod typed {
    use std::future::Future;
    use std::marker::PhantomData;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use serde::de::DeserializeOwned;

    use super::server::{RemoteIterAsyncProxy, RemoteIterProxy};
    use crate::sync::typed::{decode, flatten, flavours, typed_proxy};
    use crate::Proxy;
    use crate::Result;

    /// A typed proxy of an iterator living in the server: each `next()` is
    /// one call. Iterating a dict or list proxy (`iter()`) gives one; so does
    /// a user method returning a [`RemoteIter`](super::server::RemoteIter).
    ///
    /// Items are `Result`s: a call can fail, and a dict iterator fails with
    /// [`SyncError::RuntimeError`](crate::SyncError::RuntimeError) when its
    /// dict changed size. After an error this proxy yields nothing more.
    /// A clone is another proxy of the same iterator: both advance it.
    pub struct IterProxy<T> {
        raw: RemoteIterProxy,
        _type: PhantomData<fn() -> T>,
        failed: bool,
    }

    typed_proxy!(IterProxy<T>, RemoteIterProxy, failed: false);

    /// An item as the caller gets it: `None` at the end.
    fn item<T: DeserializeOwned>(
        raw: &impl Proxy,
        next: Result<std::result::Result<Option<crate::value::Value>, crate::SyncError>>,
    ) -> Option<Result<T>> {
        flatten(next)
            .and_then(|value| value.map(|v| decode(raw.base(), v)).transpose())
            .transpose()
    }

    impl<T: DeserializeOwned> Iterator for IterProxy<T> {
        type Item = Result<T>;

        fn next(&mut self) -> Option<Result<T>> {
            if self.failed {
                return None;
            }
            let item = item(&self.raw, self.raw.next());
            self.failed = matches!(item, Some(Err(_)));
            item
        }
    }

    type Next<T> = Pin<Box<dyn Future<Output = Option<Result<T>>> + Send>>;

    /// The async form of [`IterProxy`]: a
    /// [`Stream`](futures_core::Stream) of the items, each one call, with
    /// an inherent [`next`](Self::next) for use without a stream library.
    /// After an error it yields nothing more.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// # fn main() -> managers::Result<()> {
    /// # let manager = managers::sync::SyncManager::new();
    /// # manager.start_in_thread()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// runtime.block_on(async {
    ///     let list = manager.list_from_async([1, 2, 3]).await?;
    ///     let mut items = list.iter().await?;
    ///     let mut sum = 0;
    ///     while let Some(item) = items.next().await {
    ///         sum += item?;
    ///     }
    ///     assert_eq!(sum, 6);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub struct IterAsyncProxy<T> {
        raw: RemoteIterAsyncProxy,
        _type: PhantomData<fn() -> T>,
        failed: bool,
        /// The call in flight for [`Stream::poll_next`](futures_core::Stream::poll_next).
        pending: Option<Next<T>>,
    }

    typed_proxy!(IterAsyncProxy<T>, RemoteIterAsyncProxy, failed: false, pending: None);

    flavours!(IterProxy<T>, IterAsyncProxy);

    impl<T: DeserializeOwned + Send + 'static> IterAsyncProxy<T> {
        /// The next item, `None` once exhausted (or after an error).
        pub async fn next(&mut self) -> Option<Result<T>> {
            std::future::poll_fn(|cx| self.poll_item(cx)).await
        }

        fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
            if self.failed {
                return Poll::Ready(None);
            }
            let raw = &self.raw;
            let pending = self.pending.get_or_insert_with(|| {
                // Owns its proxy, so the call lives across polls.
                let raw = raw.clone();
                Box::pin(async move { item(&raw, raw.next().await) })
            });
            let item = std::task::ready!(pending.as_mut().poll(cx));
            self.pending = None;
            self.failed = matches!(item, Some(Err(_)));
            Poll::Ready(item)
        }
    }

    impl<T: DeserializeOwned + Send + 'static> futures_core::Stream for IterAsyncProxy<T> {
        type Item = Result<T>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
            self.get_mut().poll_item(cx)
        }
    }
}
