// A minimal PNG writer (8-bit RGB, no interlace, node:zlib for IDAT) and a raster
// canvas with lines, rectangles and a 5x7 bitmap font: enough for a bench plot
// without a drawing library.
import { deflateSync } from 'node:zlib';

export type RGB = readonly [number, number, number];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** PNG bytes of an RGB image given as width*height*3 bytes, row by row. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: ${rgb.length} bytes for ${width}x${height}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  // compression, filter, interlace: 0
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// 5x7 glyphs: 7 rows of 5 columns, row after row ('#' = ink); others draw as a box.
const GLYPHS: Record<string, string> = {
  '0': ' ### #   ##  ### # ###  ##   # ### ',
  '1': '  #   ##    #    #    #    #   ### ',
  '2': ' ### #   #    #   #   #   #   #####',
  '3': '#####   #   #     #     ##   # ### ',
  '4': '   #   ##  # # #  # #####   #    # ',
  '5': '######    ####     #    ##   # ### ',
  '6': '  ##  #   #    #### #   ##   # ### ',
  '7': '#####    #   #   #   #    #    #   ',
  '8': ' ### #   ##   # ### #   ##   # ### ',
  '9': ' ### #   ##   # ####    #   #  ##  ',
  '.': '                          ##   ##  ',
  ',': '                     ##    #   #   ',
  '-': '               #####               ',
  '>': ' #     #     #     #   #   #   #   ',
  '%': '##   ##  #   #   #   #   #  ##   ##',
  '(': '   #   #   #    #    #     #     # ',
  ')': ' #     #     #    #    #   #   #   ',
  '/': '         #   #   #   #   #         ',
  ':': '      ##   ##        ##   ##       ',
  '=': '          #####     #####          ',
  ' ': '                                   ',
  a: '           ###     # #####   # ####',
  b: '#    #    # ## ##  ##   ##   ##### ',
  c: '           ### #    #    #   # ### ',
  d: '    #    # ## ##  ###   ##   # ####',
  e: '           ### #   #######     ### ',
  f: '  ##  #  # #   ###   #    #    #   ',
  g: '      #####   ##   # ####    # ### ',
  h: '#    #    # ## ##  ##   ##   ##   #',
  i: '  #        ##    #    #    #   ### ',
  j: '   #        ##    #    # #  #  ##  ',
  k: '#    #    #  # # #  ##   # #  #  # ',
  l: ' ##    #    #    #    #    #   ### ',
  m: '          ## # # # ## # ##   ##   #',
  n: '          # ## ##  ##   ##   ##   #',
  o: '           ### #   ##   ##   # ### ',
  p: '          #### #   ##### #    #    ',
  q: '           ## ##  ## ####    #    #',
  r: '          # ## ##  ##    #    #    ',
  s: '           #####     ###     ##### ',
  t: ' #    #   ###   #    #    #  #  ## ',
  u: '          #   ##   ##   ##  ## ## #',
  v: '          #   ##   ##   # # #   #  ',
  w: '          #   ##   ## # ## # # # # ',
  x: '          #   # # #   #   # # #   #',
  y: '          #   ##   # ####    # ### ',
  z: '          #####   #   #   #   #####',
  C: ' ### #   ##    #    #    #   # ### ',
  D: '###  #  # #   ##   ##   ##  # ###  ',
  F: '######    #    #### #    #    #    ',
  N: '#   ##   ###  ## # ##  ###   ##   #',
  P: '#### #   ##   ##### #    #    #    ',
  R: '#### #   ##   ##### # #  #  # #   #',
};

function glyph(ch: string): string {
  return GLYPHS[ch] ?? '######   ##   ##   ##   ##   ######';
}

export class Canvas {
  readonly width: number;
  readonly height: number;
  readonly pixels: Uint8Array;

  constructor(width: number, height: number, background: RGB = [255, 255, 255]) {
    this.width = width;
    this.height = height;
    this.pixels = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  set(x: number, y: number, c: RGB): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.pixels[i] = c[0];
    this.pixels[i + 1] = c[1];
    this.pixels[i + 2] = c[2];
  }

  fillRect(x: number, y: number, w: number, h: number, c: RGB): void {
    for (let j = Math.round(y); j < Math.round(y + h); j++) for (let i = Math.round(x); i < Math.round(x + w); i++) this.set(i, j, c);
  }

  /** A line of the given thickness (square pen), dashed when dash > 0 (pixels on/off). */
  line(x0: number, y0: number, x1: number, y1: number, c: RGB, thickness = 1, dash = 0): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const half = Math.floor(thickness / 2);
    for (let s = 0; s <= steps; s++) {
      if (dash > 0 && Math.floor(s / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * s) / steps;
      const y = y0 + ((y1 - y0) * s) / steps;
      for (let dy = -half; dy < thickness - half; dy++) for (let dx = -half; dx < thickness - half; dx++) this.set(x + dx, y + dy, c);
    }
  }

  /** Text with its top-left corner at (x, y); returns the width drawn. */
  text(x: number, y: number, s: string, c: RGB, scale = 1): number {
    let cx = x;
    for (const ch of s) {
      const g = glyph(ch);
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) {
          if (g[row * 5 + col] === '#') this.fillRect(cx + col * scale, y + row * scale, scale, scale, c);
        }
      }
      cx += 6 * scale;
    }
    return cx - x;
  }

  static textWidth(s: string, scale = 1): number {
    return s.length * 6 * scale;
  }

  png(): Buffer {
    return encodePng(this.width, this.height, this.pixels);
  }
}
