import { isVirtualCamera } from './virtual-camera';

describe('isVirtualCamera', () => {
  it.each([
    ['OBS Virtual Camera', 'OBS Virtual Camera'],
    ['OBS-Camera', 'OBS Virtual Camera'],
    ['OBS-Camera2', 'OBS Virtual Camera'],
    ['obs virtualcam', 'OBS Virtual Camera'],
    ['ManyCam Virtual Webcam', 'ManyCam'],
    ['Dummy video device (0x0000)', 'v4l2loopback'],
    ['v4l2loopback', 'v4l2loopback'],
    ['Snap Camera', 'Snap Camera'],
    ['XSplit VCam', 'XSplit VCam'],
    ['e2eSoft VCam', 'e2eSoft VCam'],
    ['CyberLink YouCam 10', 'CyberLink YouCam'],
    ['SplitCam Video Driver', 'SplitCam'],
    ['mmhmm Camera', 'mmhmm'],
    ['Streamlabs Desktop Virtual Webcam', 'Virtual camera'],
    ['Unity Video Capture (Virtual)', 'Virtual camera'],
    ['VIRTUAL CAMERA', 'Virtual camera'],
  ])('flags %s', (label, product) => {
    expect(isVirtualCamera(label)).toBe(product);
  });

  it.each([
    'Integrated Camera (04f2:b6d9)',
    'HD Pro Webcam C920 (046d:082d)',
    'FaceTime HD Camera',
    'FaceTime HD Camera (Built-in) (05ac:8514)',
    'Logitech BRIO',
    'HP TrueVision HD Camera',
    'USB2.0 HD UVC WebCam',
    'Microsoft® LifeCam HD-3000',
    'Integrated Webcam',
    'Razer Kiyo',
    'Lenovo EasyCamera',
    'A4TECH USB2.0 PC Camera',
    'Jabra PanaCast 20',
    // Chromium's fake capture device: the browser tests run on it, so it must pass.
    'fake_device_0',
    'Fake Video Capture',
    // Browsers hide labels until the camera is allowed: unknown is not virtual.
    '',
  ])('does not flag %p', (label) => {
    expect(isVirtualCamera(label)).toBeNull();
  });
});
