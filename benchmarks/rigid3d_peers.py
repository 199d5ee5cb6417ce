"""The classical rigid registrations the 3D benchmark races: SimpleITK, itk-elastix and ANTs.

Each takes two SimpleITK volumes (fixed, moving) and returns the fixed->moving LPS 4x4 (the
ITK convention, as dlreg). Conversions between image types count in their time. Threads:
SimpleITK and itk-elastix follow their global defaults (set by the caller); ANTs reads
ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS when it is first used, so `ants_rigid` callers set that
variable before the first call.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import rigid_to_matrix


def sitk_rigid(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    """SimpleITK Mattes-MI rigid: geometric-centre init, 3-level pyramid, regular-step GD."""
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 0.01, 200, relaxationFactor=0.5)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(init.GetParameters()), init.GetCenter())


def elastix_rigid(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    """itk-elastix with its default rigid parameter map (Mattes MI, 4 resolutions)."""
    import itk

    def to_itk(img: sitk.Image):
        out = itk.image_from_array(sitk.GetArrayFromImage(img).astype(np.float32))
        out.SetOrigin(img.GetOrigin())
        out.SetSpacing(img.GetSpacing())
        out.SetDirection(itk.matrix_from_array(np.asarray(img.GetDirection()).reshape(3, 3)))
        return out

    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("rigid"))
    _, result = itk.elastix_registration_method(to_itk(fixed), to_itk(moving), parameter_object=params,
                                                log_to_console=False)
    p = [float(v) for v in result.GetParameter(0, "TransformParameters")]
    center = [float(v) for v in result.GetParameter(0, "CenterOfRotationPoint")]
    return rigid_to_matrix(p, center)


def ants_rigid(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    """ANTsPy `ants.registration(type_of_transform="Rigid")`: its standard rigid map (Mattes MI,
    32 bins, regular 25% sampling, 4 levels shrink 8/4/2/1, smoothing 3/2/1/0 voxels,
    centre-of-mass initialisation)."""
    import os

    import ants

    def to_ants(img: sitk.Image):
        return ants.from_numpy(sitk.GetArrayFromImage(img).astype(np.float32).T, origin=list(img.GetOrigin()),
                               spacing=list(img.GetSpacing()), direction=np.asarray(img.GetDirection()).reshape(3, 3))

    result = ants.registration(to_ants(fixed), to_ants(moving), type_of_transform="Rigid")
    try:
        transform = ants.read_transform(result["fwdtransforms"][0])
    finally:
        for path in result["fwdtransforms"] + result["invtransforms"]:
            if os.path.exists(path):
                os.remove(path)
    values = np.asarray(transform.parameters, float)
    center = np.asarray(transform.fixed_parameters, float)
    matrix = np.eye(4)
    matrix[:3, :3] = values[:9].reshape(3, 3)
    matrix[:3, 3] = values[9:12] + center - matrix[:3, :3] @ center
    return matrix


PEERS = {"elastix_rigid": elastix_rigid, "simpleitk_rigid": sitk_rigid, "ants_rigid": ants_rigid}
