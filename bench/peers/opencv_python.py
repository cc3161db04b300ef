#!/usr/bin/env python3
"""Peer: the same models and steps through OpenCV's Python bindings (Debian python3-opencv), one thread.

Detect, 68 landmarks, 5-point similarity alignment, embedding and liveness on one JPEG frame, as the engine's
full call does. Prints one JSON object: median and p99 ms of the whole chain and of each network.
Usage: /usr/bin/python3 bench/peers/opencv_python.py MODEL_DIR FRAME.jpg|- [SECONDS]   (- reads the JPEG from stdin)
"""
import json
import sys
import time

import cv2
import numpy as np

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def load(model_dir, name):
    net = cv2.dnn.readNetFromONNX(f"{model_dir}/{name}")
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    return net


def similarity(src):
    ms, md = src.mean(0), TEMPLATE.mean(0)
    p, q = src - ms, TEMPLATE - md
    den = max((p ** 2).sum(), 1e-6)
    a = (p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]).sum() / den
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / den
    return np.array([[a, -b, md[0] - (a * ms[0] - b * ms[1])], [b, a, md[1] - (b * ms[0] + a * ms[1])]])


def main():
    model_dir, frame_path = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    cv2.setNumThreads(1)
    detect, landmark = load(model_dir, "fr_detect.onnx"), load(model_dir, "fr_landmark.onnx")
    feature, liveness = load(model_dir, "fr_feature.onnx"), load(model_dir, "fr_liveness.onnx")
    raw = sys.stdin.buffer.read() if frame_path == "-" else open(frame_path, "rb").read()
    data = np.frombuffer(raw, dtype=np.uint8)
    out_names = detect.getUnconnectedOutLayersNames()
    times = {"total": [], "detect": [], "landmarks": [], "embedding": [], "liveness": []}

    def run():
        t0 = time.perf_counter()
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        t = time.perf_counter()
        detect.setInput(cv2.dnn.blobFromImage(img, 1 / 128, (320, 240), (127, 127, 127), False, False))
        outs = detect.forward(out_names)
        boxes, scores = (outs[0], outs[1]) if outs[0].shape[-1] == 4 else (outs[1], outs[0])
        s = scores[0, :, 1]
        keep = s > 0.7
        rects = [[float(b[0] * w), float(b[1] * h), float((b[2] - b[0]) * w), float((b[3] - b[1]) * h)]
                 for b in boxes[0][keep]]
        idx = cv2.dnn.NMSBoxes(rects, s[keep].tolist(), 0.7, 0.3)
        x, y, bw, bh = [int(v) for v in max((rects[i] for i in np.array(idx).flatten()), key=lambda r: r[2] * r[3])]
        x, y = max(x, 0), max(y, 0)
        times["detect"].append(time.perf_counter() - t)
        t = time.perf_counter()
        grey = cv2.resize(cv2.cvtColor(img[y:y + bh, x:x + bw], cv2.COLOR_BGR2GRAY), (64, 64))
        landmark.setInput(cv2.dnn.blobFromImage(grey, 1 / 256))
        lm = landmark.forward().reshape(68, 2) * [bw, bh] + [x, y]
        times["landmarks"].append(time.perf_counter() - t)
        five = np.array([lm[[37, 38, 40, 41]].mean(0), lm[[43, 44, 46, 47]].mean(0), lm[30],
                         lm[[48, 60]].mean(0), lm[[54, 64]].mean(0)])
        aligned = cv2.warpAffine(img, similarity(five), (112, 112))
        t = time.perf_counter()
        feature.setInput(cv2.dnn.blobFromImage(aligned, 1 / 128, (112, 112), (127, 127, 127), False))
        emb = feature.forward().flatten()
        emb /= np.linalg.norm(emb)
        times["embedding"].append(time.perf_counter() - t)
        t = time.perf_counter()
        cx, cy, s2 = x + bw / 2, y + bh / 2, min(2.7, (h - 1) / bh, (w - 1) / bw)
        lx, ly = int(max(cx - bw * s2 / 2, 0)), int(max(cy - bh * s2 / 2, 0))
        patch = cv2.resize(img[ly:ly + int(bh * s2), lx:lx + int(bw * s2)], (128, 128))
        liveness.setInput(cv2.dnn.blobFromImage(patch, 1.0, (128, 128), (0, 0, 0), True))
        liveness.forward()
        times["liveness"].append(time.perf_counter() - t)
        times["total"].append(time.perf_counter() - t0)

    for _ in range(10):
        run()
    for k in times:
        times[k].clear()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        run()
    result = {"peer": "opencv-python", "opencv": cv2.__version__, "threads": 1, "n": len(times["total"])}
    for k, v in times.items():
        ms = sorted(x * 1000 for x in v)
        result[k] = {"median_ms": round(ms[len(ms) // 2], 3), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
