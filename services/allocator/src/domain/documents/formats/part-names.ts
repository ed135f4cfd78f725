// Part names inside a zip package (OOXML, EPUB): relationship and manifest targets are relative to the folder
// of the part that names them.

/** Resolves `target` against `baseFolder` inside a package (`../media/a.png` from `ppt/slides`). */
export function resolvePartName(baseFolder: string, target: string): string {
  let path = target;
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  try {
    path = decodeURIComponent(path);
  } catch {
    // a stray % is taken literally
  }
  const parts = path.startsWith('/') ? [] : baseFolder.split('/').filter((part) => part !== '');
  for (const part of path.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.' && part !== '') parts.push(part);
  }
  return parts.join('/');
}

/** The folder of a part name (`ppt/slides/slide1.xml` → `ppt/slides`). */
export function folderOf(partName: string): string {
  const slash = partName.lastIndexOf('/');
  return slash < 0 ? '' : partName.slice(0, slash);
}
