/**
 * Types for `fuse-native` 2.2.6, which publishes none. Only what the adapter uses; the conventions
 * (measured, ../shared/LIBRARY-NOTES.md §1): every callback takes a code first, 0 or a negative
 * errno; `read` calls back with the byte count as its only argument.
 */
declare module 'fuse-native' {
  namespace Fuse {
    interface FuseStat {
      mode: number;
      size: number;
      uid: number;
      gid: number;
      nlink: number;
      ino: number;
      rdev: number;
      blksize: number;
      blocks: number;
      dev: number;
      atime: Date | number;
      mtime: Date | number;
      ctime: Date | number;
    }
    type Cb = (code: number) => void;
    interface FuseOps {
      init?(cb: Cb): void;
      statfs?(path: string, cb: (code: number, st?: Record<string, number>) => void): void;
      getattr?(path: string, cb: (code: number, st?: FuseStat) => void): void;
      fgetattr?(path: string, fd: number, cb: (code: number, st?: FuseStat) => void): void;
      access?(path: string, mode: number, cb: Cb): void;
      readdir?(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
      opendir?(path: string, flags: number, cb: (code: number, fh?: number) => void): void;
      releasedir?(path: string, fh: number, cb: Cb): void;
      open?(path: string, flags: number, cb: (code: number, fh?: number) => void): void;
      release?(path: string, fh: number, cb: Cb): void;
      read?(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: (bytesOrError: number) => void): void;
      readlink?(path: string, cb: (code: number, target?: string) => void): void;
      getxattr?(path: string, name: string, position: number, cb: (code: number, value?: Buffer) => void): void;
      listxattr?(path: string, cb: (code: number, names?: string[]) => void): void;
      [op: string]: ((...args: never[]) => void) | undefined;
    }
  }
  class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: Record<string, unknown>);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err?: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly EROFS: number;
    static readonly ENOTDIR: number;
    static readonly EISDIR: number;
    static readonly EINVAL: number;
    static readonly ENODATA: number;
    static readonly ERANGE: number;
    static readonly EACCES: number;
  }
  export = Fuse;
}
