// A QR code as an <img> (a GIF data URL: the content security policy allows data: images),
// by the vendored encoder (vendor/README.md). Error correction M, the smallest version that
// fits; the caller sizes the image with CSS (class "qr").
import qrcode from "./vendor/qrcode-generator-2.0.4.mjs";

export function qrImage(text, label) {
  const code = qrcode(0, "M");
  code.addData(text, "Byte");
  code.make();
  const image = document.createElement("img");
  image.src = code.createDataURL(8, 4);
  image.className = "qr";
  image.alt = label;
  return image;
}
