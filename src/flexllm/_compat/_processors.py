"""0.17's multimodal batch helpers, over MllmClient and the batch engine.

0.17 ran them through ``MllmClient.call_llm``. Here they build the same messages and run
them through :meth:`MllmClient.chat_completions_batch`, so checkpoints (``output_jsonl``),
the response cache, ``budget`` and ``return_cost_report`` work for them too; each item's
images are inlined (data URLs) only when a worker takes it, so a folder of a million images
needs memory for the ones in flight, not for the folder.
"""

from __future__ import annotations

import csv
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from flexllm_core import UsageError

if TYPE_CHECKING:
    from .._clients import MllmClient

__all__ = ("MllmFolderProcessor", "MllmTableProcessor")

_DEFAULT_PROMPT = "请描述这幅图片"
#: 0.17's call_llm sent these unless told otherwise.
_LEGACY_DEFAULTS = {"temperature": 0.1, "max_tokens": 2000, "top_p": 0.95}

Messages = list[dict[str, Any]]


class _Processor:
    def __init__(self, mllm_client: MllmClient) -> None:
        self.mllm_client = mllm_client

    @property
    def call_llm(self) -> Callable[..., Any]:
        return self.mllm_client.call_llm

    @property
    def call_llm_sync(self) -> Callable[..., Any]:
        return self.mllm_client.call_llm_sync

    @property
    def call_llm_with_selection(self) -> Callable[..., Any]:
        raise AttributeError("call_llm_with_selection is not carried: run the batch n times "
                             "(or with n=) and choose among the answers yourself")

    async def _run(self, messages_list: Sequence[Messages], use_selection: bool,
                   kwargs: dict[str, Any]) -> Any:
        """Answer every message list through the client's batch engine, in input order."""
        if use_selection:
            raise UsageError("use_selection is not carried: run the batch n times (or with "
                             "n=) and choose among the answers yourself")
        for name in ("n_predictions", "selector_fn"):
            kwargs.pop(name, None)  # only read by use_selection, which is refused above
        client = self.mllm_client
        for index, messages in enumerate(messages_list):  # a missing file fails before sending
            await client.check_images(messages, f"messages_list[{index}]")

        async def inlined() -> AsyncIterator[Messages]:
            for index, messages in enumerate(messages_list):
                yield await client.prepare_messages(messages, where=f"messages_list[{index}]")

        params = {**_LEGACY_DEFAULTS, **kwargs}
        return await client.chat_completions_batch(inlined(), **params)


def _image_message(text: str, url: str, system_prompt: str) -> Messages:
    messages: Messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": [
        {"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]})
    return messages


class MllmFolderProcessor(_Processor):
    """Ask a vision model about every image in a folder (or a list of image files)."""

    SUPPORTED_IMAGE_EXTENSIONS = frozenset(
        {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tiff", ".tif"})

    def process_image(self, image_path: str) -> str:
        """Hook: the path as sent (absolute by default)."""
        return os.path.abspath(image_path)

    def scan_folder_images(self, folder_path: str, recursive: bool = True,
                           max_num: int | None = None,
                           extensions: Iterable[str] | None = None) -> list[str]:
        """Image files under ``folder_path``, sorted by path (blocking: a directory walk).

        Raises:
            UsageError: no folder given, or it does not exist or is not a folder.
        """
        if not folder_path:
            raise UsageError("folder_path: must not be empty")
        folder = Path(folder_path)
        if not folder.is_dir():
            raise UsageError(f"folder_path: {str(folder)!r} is not an existing folder")
        wanted = {e.lower() for e in (extensions or self.SUPPORTED_IMAGE_EXTENSIONS)}
        if recursive:
            found = (os.path.join(root, name) for root, _, names in os.walk(folder)
                     for name in names)
        else:
            found = (str(p) for p in folder.iterdir() if p.is_file())
        files = []
        for path in found:
            if Path(path).suffix.lower() in wanted:
                files.append(path)
                if max_num and len(files) >= max_num:
                    break
        return sorted(files)

    def _messages(self, image_files: Sequence[str], system_prompt: str,
                  text_prompt: str) -> list[Messages]:
        out = []
        for image in image_files:
            path = self.process_image(image)
            text = f"{text_prompt}\n文件路径: {path}"  # 0.17 told the model the file's path
            out.append(_image_message(text, Path(path).as_uri(), system_prompt))
        return out

    async def call_folder_images(
        self, folder_path: str, system_prompt: str = "", text_prompt: str = _DEFAULT_PROMPT,
        recursive: bool = True, max_num: int | None = None,
        extensions: Iterable[str] | None = None, use_selection: bool = False,
        return_image_files: bool = False, **kwargs: Any,
    ) -> Any:
        """Answers for the folder's images in path order (None where one failed); with
        ``return_image_files``, ``(answers, files)``. ``kwargs`` go to the batch call."""
        def scan() -> tuple[list[str], list[Messages]]:  # a directory walk: not on the loop
            files = self.scan_folder_images(folder_path, recursive, max_num, extensions)
            return files, self._messages(files, system_prompt, text_prompt)

        files, messages = await anyio.to_thread.run_sync(scan)
        answers = await self._run(messages, use_selection, kwargs) if files else []
        return (answers, files) if return_image_files else answers

    async def call_image_files(
        self, image_files: Sequence[str], system_prompt: str = "",
        text_prompt: str = _DEFAULT_PROMPT, use_selection: bool = False, **kwargs: Any,
    ) -> Any:
        """Answers for ``image_files`` in order; a missing file raises UsageError first."""
        if not image_files:
            return []
        messages = await anyio.to_thread.run_sync(  # abspath may read the working directory
            self._messages, list(image_files), system_prompt, text_prompt)
        return await self._run(messages, use_selection, kwargs)


def _rows(table: object) -> list[dict[str, Any]]:
    to_dict = getattr(table, "to_dict", None)  # a pandas DataFrame
    if callable(to_dict):
        return list(to_dict("records"))
    if isinstance(table, Iterable) and not isinstance(table, (str, bytes, Mapping)):
        return [dict(row) for row in table]
    raise UsageError(f"expected a DataFrame or a list of row dicts, got {type(table).__name__}")


def _read_table(path: str, sheet_name: object, max_num: int | None) -> list[dict[str, Any]]:
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    elif path.endswith(".xlsx"):
        try:
            import pandas as pd  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise UsageError(f"{path}: reading .xlsx needs pandas and openpyxl "
                             "(pip install pandas openpyxl), or save it as .csv") from None
        frame = pd.read_excel(path, sheet_name=sheet_name).fillna("").astype(str)
        rows = list(frame.to_dict("records"))
    else:
        raise UsageError(f"table_path: {path!r} is not a .csv or .xlsx file")
    return rows[:max_num] if max_num is not None else rows


class MllmTableProcessor(_Processor):
    """Ask a model about every row of a table (.csv, .xlsx, a DataFrame or row dicts)."""

    def process_text(self, text: str) -> str:
        """Hook: the row's text as sent."""
        return text

    def process_image(self, image: str) -> str:
        """Hook: the row's image path or URL as sent."""
        return image

    async def load_rows(self, table_path: str, sheet_name: object = 0,
                        max_num: int | None = None) -> list[dict[str, Any]]:
        """The table's rows as dicts (read in a worker thread)."""
        if not table_path:
            raise UsageError("table_path: must not be empty")
        try:
            return await anyio.to_thread.run_sync(_read_table, table_path, sheet_name, max_num)
        except OSError as exc:
            raise UsageError(f"table_path: can't read {table_path!r}: {exc.strerror}") from None

    @staticmethod
    def _column(rows: list[dict[str, Any]], name: str | None) -> bool:
        if name is None:
            return False
        if rows and name not in rows[0]:
            raise UsageError(f"column {name!r} is not in the table (columns: "
                             f"{', '.join(map(str, rows[0]))})")
        return True

    async def call_dataframe(self, df: object, text_col: str, image_col: str | None = None,
                             use_selection: bool = False, **kwargs: Any) -> Any:
        """One request per row: its ``text_col`` text, with its ``image_col`` image if given."""
        rows = _rows(df)
        self._column(rows, text_col)
        with_image = self._column(rows, image_col)
        messages_list: list[Messages] = []
        for row in rows:
            text = self.process_text(str(row[text_col]))
            if with_image:
                image = self.process_image(str(row[image_col]))  # type: ignore[index]
                messages_list.append(_image_message(text, image, ""))
            else:
                messages_list.append([{"role": "user", "content": text}])
        return await self._run(messages_list, use_selection, kwargs) if rows else []

    async def call_table(self, table_path: str, text_col: str = "text",
                         image_col: str | None = None, sheet_name: object = 0,
                         max_num: int | None = None, use_selection: bool = False,
                         **kwargs: Any) -> Any:
        """:meth:`call_dataframe` over a .csv or .xlsx file."""
        rows = await self.load_rows(table_path, sheet_name, max_num)
        return await self.call_dataframe(rows, text_col, image_col, use_selection, **kwargs)

    async def call_table_images(
        self, table_path: str, image_col: str = "image", system_prompt: str = "",
        text_prompt: str = _DEFAULT_PROMPT, sheet_name: object = 0, max_num: int | None = None,
        use_selection: bool = False, **kwargs: Any,
    ) -> Any:
        """Ask ``text_prompt`` about each row's ``image_col`` image."""
        rows = await self.load_rows(table_path, sheet_name, max_num)
        if not rows:
            return []
        self._column(rows, image_col)
        messages_list = [_image_message(text_prompt, self.process_image(str(row[image_col])),
                                        system_prompt) for row in rows]
        return await self._run(messages_list, use_selection, kwargs)
